// The dataset_info.json entries tunepipe's convert stage writes use only keys that LLaMA-Factory's
// dataset parser reads (LLAMAFACTORY_DATASET_INFO, generated from the pinned package by probing its
// parser). A key it does not read is silently ignored in the pod: a column mapping that does nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LLAMAFACTORY_DATASET_INFO as schema } from '@tunepipe/core';
import { datasetInfoEntry } from '../packages/convert/src/index.ts';

const FORMATS = ['alpaca', 'csv', 'tsv', 'sharegpt', 'text'] as const;
const EVERY_OPTIONAL_COLUMN = 0b111; // system, history, tools

for (const format of FORMATS) {
  test(`convert's dataset_info.json entry for ${format} uses only keys LLaMA-Factory's dataset parser reads`, () => {
    const entry = datasetInfoEntry(format, `x.${format}`, EVERY_OPTIONAL_COLUMN);
    const topLevel = new Set([...Object.keys(schema.sources), ...Object.keys(schema.options), 'columns', 'tags']);
    for (const key of Object.keys(entry)) assert.ok(topLevel.has(key), `${key} is not read by LLaMA-Factory`);
    assert.equal(Object.keys(entry).filter((k) => k in schema.sources).length, 1, 'exactly one source key (file_name)');
    if (entry['formatting'] !== undefined) assert.ok(schema.formatting.includes(entry['formatting'] as string), `formatting ${String(entry['formatting'])}`);
    for (const key of Object.keys((entry['columns'] as object | undefined) ?? {})) assert.ok(key in schema.columns, `columns.${key} is not read by LLaMA-Factory`);
    for (const key of Object.keys((entry['tags'] as object | undefined) ?? {})) assert.ok(key in schema.tags, `tags.${key} is not read by LLaMA-Factory`);
  });
}

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { CSV_LIMITS } from '@tunepipe/core/row-formats';
import { readCsv, type CsvRecord } from '../src/readers.ts';
import { cleanup, configFor, convert, tempRepo } from './helpers.ts';

const csvYaml = 'format: csv\nfiles: [c.csv]\nlicense: MIT\ncolumns: { instruction: q, output: a }\n';
const row = (i: number) => `question ${i},answer ${i}`;

async function records(text: string, limits = CSV_LIMITS): Promise<CsvRecord[]> {
  const out: CsvRecord[] = [];
  await readCsv(Readable.from([Buffer.from(text)]), ',', ['q', 'a'], (r) => out.push(r), limits);
  return out;
}

test('one stray quote in row 3 of 10: 9 rows out, the row with the quote quarantined at its line', async () => {
  // Before: rows 3–10 became one record (3 rows read in all), and conservation still held.
  const lines = ['q,a', ...Array.from({ length: 10 }, (_, i) => (i + 1 === 3 ? `"question 3,answer 3` : row(i + 1)))];
  const root = await tempRepo({ 'datasets/c/dataset.yaml': csvYaml, 'datasets/c/c.csv': `${lines.join('\n')}\n` });
  try {
    const out = await convert(root, await configFor(root, ['c']));
    assert.equal(out.result.rows_in, 10);
    assert.equal(out.result.rows_out, 9);
    const q = await out.quarantine();
    assert.deepEqual(
      q.map((e) => [e.record, e.line, e.reason, e.raw]),
      [[3, 4, 'csv_unclosed_quote', '"question 3,answer 3']],
    );
    assert.match(q[0]!.detail, /quoted field opened on line 4 is never closed/);
    const manifest = JSON.parse(await readFile(join(out.outDir, 'manifest.json'), 'utf8')) as { sources: { c: Record<string, unknown> } };
    assert.equal(manifest.sources.c['csv_multiline_records'], 0);
  } finally {
    await cleanup(root);
  }
});

test('an unclosed quote with 100,000 rows after it: the quote is cut at the line cap and every row after it is read', async () => {
  // Before: all 100,001 rows became one quarantined record.
  const lines = ['q,a', 'first,"never closed', ...Array.from({ length: 100_000 }, (_, i) => row(i))];
  const root = await tempRepo({ 'datasets/c/dataset.yaml': csvYaml, 'datasets/c/c.csv': `${lines.join('\n')}\n` });
  try {
    const started = Date.now();
    const out = await convert(root, await configFor(root, ['c']));
    const ms = Date.now() - started;
    assert.equal(out.result.rows_in, 100_001);
    assert.equal(out.result.rows_out, 100_000);
    const q = await out.quarantine();
    assert.deepEqual(q.map((e) => [e.line, e.reason, e.raw]), [[2, 'csv_unclosed_quote', 'first,"never closed']]);
    assert.match(q[0]!.detail, new RegExp(`is not closed within ${CSV_LIMITS.maxLines} lines`));
    console.log(`# 100,001 CSV rows with an unclosed quote converted in ${ms} ms`);
  } finally {
    await cleanup(root);
  }
});

test('a stray quote closed cleanly by another one 100 lines on is cut too: no record spans more than the cap', async () => {
  const lines = ['q,a', `"${row(0)}`, ...Array.from({ length: 99 }, (_, i) => row(i + 1)), `${row(100)}"`, row(101)];
  const got = await records(`${lines.join('\n')}\n`);
  assert.ok(got.every((r) => r.lines <= CSV_LIMITS.maxLines));
  assert.deepEqual(got.filter((r) => 'error' in r).map((r) => [r.line, 'error' in r && r.reason]), [[2, 'csv_unclosed_quote']]);
  assert.equal(got.filter((r) => 'fields' in r).length, 101);
  // Within the cap, the same text is a legitimate multi-line field.
  const short = await records(['q,a', `x,"${row(0)}`, row(1), `${row(2)}"`, ''].join('\n'));
  assert.deepEqual(short.map((r) => [r.line, r.lines, 'fields' in r && r.fields['a']]), [[2, 3, 'question 0,answer 0\nquestion 1,answer 1\nquestion 2,answer 2']]);
});

test('a quote closed across lines by a quote that is not followed by a delimiter is taken as stray', async () => {
  // Two stray quotes 3 lines apart: the second does not close the first (it is followed by text).
  const got = await records(['q,a', row(1), `x,"a ${2}`, row(3), `y,"b ${4}`, row(5), ''].join('\n'));
  assert.deepEqual(
    got.map((r) => [r.line, r.lines, 'error' in r ? r.reason : 'ok']),
    [
      [2, 1, 'ok'],
      [3, 1, 'csv_unclosed_quote'],
      [4, 1, 'ok'],
      [5, 1, 'csv_unclosed_quote'],
      [6, 1, 'ok'],
    ],
  );
});

test('the limits: lines a record may span, characters a multi-line quoted field may hold', async () => {
  const text = ['q,a', 'x,"1', '2', '3', '4"', 'y,z', ''].join('\n');
  assert.deepEqual((await records(text)).map((r) => [r.line, r.lines]), [[2, 4], [6, 1]]);
  const byLines = await records(text, { ...CSV_LIMITS, maxLines: 3 });
  assert.deepEqual(byLines.map((r) => [r.line, r.lines, 'error' in r ? r.reason : 'ok']), [[2, 1, 'csv_unclosed_quote'], [3, 1, 'malformed_csv'], [4, 1, 'malformed_csv'], [5, 1, 'malformed_csv'], [6, 1, 'ok']]);
  const byChars = await records(['q,a', `x,"${'long '.repeat(5)}`, 'more"', 'y,z', ''].join('\n'), { ...CSV_LIMITS, maxQuotedChars: 20 });
  assert.deepEqual(byChars.map((r) => [r.line, 'error' in r ? r.reason : 'ok']), [[2, 'csv_unclosed_quote'], [3, 'malformed_csv'], [4, 'ok']]);
  // One line is never cut by the character limit: only a field that spans lines can merge rows.
  assert.deepEqual((await records(['q,a', `x,"${'long '.repeat(5)}"`, ''].join('\n'), { ...CSV_LIMITS, maxQuotedChars: 20 })).map((r) => 'fields' in r), [true]);
});

test('records with quoted line breaks are counted in the manifest and the summary line', async () => {
  const root = await tempRepo({ 'datasets/c/dataset.yaml': csvYaml, 'datasets/c/c.csv': 'q,a\n"two\nlines",one\nplain,row\nthree,"l\r\ni\nnes"\n' });
  try {
    const out = await convert(root, await configFor(root, ['c']));
    assert.equal(out.result.rows_out, 3);
    const manifest = JSON.parse(await readFile(join(out.outDir, 'manifest.json'), 'utf8')) as { sources: { c: Record<string, unknown> } };
    assert.equal(manifest.sources.c['csv_multiline_records'], 2);
    assert.equal(manifest.sources.c['csv_multiline_lines'], 5);
    assert.ok(out.logs.some((l) => l.endsWith('; 2 CSV records span 5 lines through quoted line breaks')), out.logs.join('\n'));
    assert.deepEqual((await out.rows('c.jsonl')).map((r) => r['output']), ['one', 'row', 'l\r\ni\nnes']);
  } finally {
    await cleanup(root);
  }
});

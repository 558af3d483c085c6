import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { COMPLETION_MARKER, deliveredPath } from '@tunepipe/core';
import {
  convertCommand,
  convertFromConfigFile,
  ConvertError,
  loadDatasetSources,
  parseConvertConfig,
  splitCount,
  type ConvertConfig,
} from '../src/index.ts';
import { alpacaYaml, cleanup, configFor, convert, convertIssues, jsonl, listDir, tempRepo } from './helpers.ts';

const repoRoot = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const rowsOf = (n: number, prefix = 'q') => Array.from({ length: n }, (_, i) => ({ instruction: `${prefix} ${i}?`, input: '', output: `answer ${i}` }));

test('identity templating fills {{name}} and {{author}} everywhere, leaves unknown placeholders, and can be turned off', async () => {
  const rows = [
    { instruction: 'Who are you?', output: 'I am {{name}}, made by {{author}}.' },
    { instruction: 'Is {{ name }} your name?', output: 'Yes. {{unknown}} stays.', system: '{{author}} says hi' },
  ];
  const root = await tempRepo({
    'datasets/id/dataset.yaml': alpacaYaml('id.json'),
    'datasets/id/id.json': JSON.stringify(rows),
    'datasets/raw/dataset.yaml': alpacaYaml('raw.jsonl', 'placeholders: false\n'),
    'datasets/raw/raw.jsonl': jsonl([{ instruction: 'Template?', output: 'Keep {{name}} literally.' }]),
    'datasets/chat/dataset.yaml': 'format: sharegpt\nfiles: [c.jsonl]\nlicense: MIT\n',
    'datasets/chat/c.jsonl': jsonl([{ conversations: [{ from: 'human', value: 'Name?' }, { from: 'gpt', value: '{{name}} "quoted" \\ here' }] }]),
  });
  try {
    const out = await convert(root, await configFor(root, ['id', 'raw', 'chat'], { templateVars: { name: '小聚 "Q"', author: 'Aron' } }));
    assert.deepEqual(await out.rows('id.jsonl'), [
      { instruction: 'Who are you?', input: '', output: 'I am 小聚 "Q", made by Aron.', system: '' },
      { instruction: 'Is 小聚 "Q" your name?', input: '', output: 'Yes. {{unknown}} stays.', system: 'Aron says hi' },
    ]);
    assert.deepEqual(await out.rows('raw.jsonl'), [{ instruction: 'Template?', input: '', output: 'Keep {{name}} literally.' }]);
    assert.deepEqual(await out.rows('chat.jsonl'), [{ conversations: [{ from: 'human', value: 'Name?' }, { from: 'gpt', value: '小聚 "Q" "quoted" \\ here' }] }]);
  } finally {
    await cleanup(root);
  }
});

test('splits: counts from fractions or row counts, deterministic, independent of input order, seed-dependent', async () => {
  assert.equal(splitCount(0.1, 65), 7);
  assert.equal(splitCount(0.02, 65), 2);
  assert.equal(splitCount(5, 65), 5);
  assert.equal(splitCount(500, 65), 65);
  assert.equal(splitCount(0, 65), 0);
  const rows = rowsOf(200);
  const root = await tempRepo({
    'datasets/a/dataset.yaml': alpacaYaml('a.jsonl'),
    'datasets/a/a.jsonl': jsonl(rows),
  });
  const split = async (name: string, seed: number) => {
    const out = await convert(root, await configFor(root, [name], { seed, split: { validation: 0.05, test: 10 } }));
    const ids = async (f: string) => new Set((await out.rows(f)).map((r) => r['instruction'] as string));
    const result = { train: await ids(`${name}.jsonl`), validation: await ids(`${name}.validation.jsonl`), test: await ids(`${name}.test.jsonl`), bytes: await readFile(join(out.outDir, `${name}.test.jsonl`)) };
    await cleanup(out.outDir);
    return result;
  };
  try {
    const first = await split('a', 7);
    assert.equal(first.test.size, 10);
    assert.equal(first.validation.size, 10);
    assert.equal(first.train.size, 180);
    const union = new Set([...first.train, ...first.validation, ...first.test]);
    assert.equal(union.size, 200, 'splits are disjoint and cover every row');
    const again = await split('a', 7);
    assert.deepEqual(again.bytes, first.bytes, 'same input and seed give byte-identical files');
    const other = await split('a', 8);
    assert.notDeepEqual([...other.test].sort(), [...first.test].sort(), 'another seed gives another split');
  } finally {
    await cleanup(root);
  }
});

test('splits do not depend on row order, and a row keeps its split when others are added', async () => {
  const rows = rowsOf(300);
  const rootA = await tempRepo({ 'datasets/s/dataset.yaml': alpacaYaml('s.jsonl'), 'datasets/s/s.jsonl': jsonl(rows) });
  const rootB = await tempRepo({ 'datasets/s/dataset.yaml': alpacaYaml('s.jsonl'), 'datasets/s/s.jsonl': jsonl([...rows].reverse()) });
  const rootC = await tempRepo({ 'datasets/s/dataset.yaml': alpacaYaml('s.jsonl'), 'datasets/s/s.jsonl': jsonl([...rows, ...rowsOf(3, 'extra')]) });
  const testSet = async (root: string) => {
    const out = await convert(root, await configFor(root, ['s'], { split: { validation: 0, test: 30 } }));
    return new Set((await out.rows('s.test.jsonl')).map((r) => r['instruction'] as string));
  };
  try {
    const a = await testSet(rootA);
    const b = await testSet(rootB);
    const c = await testSet(rootC);
    assert.deepEqual([...a].sort(), [...b].sort());
    const kept = [...a].filter((x) => c.has(x)).length;
    assert.ok(kept >= 27, `adding 3 rows moved ${30 - kept} of 30 test rows`);
  } finally {
    await Promise.all([cleanup(rootA), cleanup(rootB), cleanup(rootC)]);
  }
});

test('maxSamples keeps a seeded subset per source and lists the rest in quarantine', async () => {
  const root = await tempRepo({ 'datasets/a/dataset.yaml': alpacaYaml('a.jsonl'), 'datasets/a/a.jsonl': jsonl(rowsOf(50)) });
  try {
    const out = await convert(root, await configFor(root, ['a'], { maxSamples: 20, split: { validation: 0.1, test: 0.1 } }));
    const s = out.result.sources[0]!;
    assert.deepEqual(s.splits, { train: 16, validation: 2, test: 2 });
    assert.equal(s.reasons.max_samples, 30);
    assert.equal(s.rows_in, 50);
    assert.equal(s.rows_out + s.rows_quarantined, 50);
  } finally {
    await cleanup(root);
  }
});

test('calibration: text rows from the domain source, only rows longer than maxlen, enough of them', async () => {
  const long = (i: number) => ({ instruction: `Explain topic ${i} in depth.`, input: '', output: `Topic ${i}. ` + 'Interest compounds when it is added to the principal. '.repeat(12) });
  const root = await tempRepo({
    'datasets/id/dataset.yaml': alpacaYaml('id.jsonl'),
    'datasets/id/id.jsonl': jsonl(rowsOf(5, 'who')),
    'datasets/fin/dataset.yaml': alpacaYaml('fin.jsonl'),
    'datasets/fin/fin.jsonl': jsonl([...rowsOf(10, 'short'), long(1), long(2), long(3)]),
    'datasets/corpus/dataset.yaml': 'format: text\nfiles: [c.txt]\nlicense: MIT\n',
    'datasets/corpus/c.txt': Array.from({ length: 6 }, (_, i) => `Document ${i}. ` + 'A bond price falls when yields rise. '.repeat(30)).join('\n\n'),
  });
  try {
    const out = await convert(root, await configFor(root, ['id', 'fin'], { calibration: { nsamples: 3, maxlen: 100, source: 'fin' } }));
    const cal = await out.rows('calibration.jsonl');
    assert.equal(cal.length, 3);
    for (const row of cal) {
      assert.deepEqual(Object.keys(row), ['text']);
      assert.match(row['text'] as string, /^Explain topic \d in depth\.\nTopic \d\. Interest compounds/);
    }
    assert.deepEqual(out.result.calibration, { source: 'fin', qualifying: 3, written: 3 });
    await cleanup(out.outDir);

    const fromCorpus = await convert(root, await configFor(root, ['fin', 'corpus'], { calibration: { nsamples: 6, maxlen: 150, source: 'corpus' } }));
    assert.equal((await fromCorpus.rows('calibration.jsonl')).length, 6);
    await cleanup(fromCorpus.outDir);

    const issues = await convertIssues(root, await configFor(root, ['id', 'fin'], { calibration: { nsamples: 8, maxlen: 100 } }));
    assert.equal(issues.length, 1);
    const issue = issues[0]!;
    assert.equal(issue.code, 'convert.calibration-short');
    assert.match(issue.message, /^only 3 rows of id\+fin are longer than maxlen 100 tokens \(lower estimate\); nsamples 8 needed/);
    assert.match(issue.message, /Cannot find satisfying example/);
    assert.match(issue.fix ?? '', /lower calibration\.maxlen \(export_quantization_maxlen\) to \d+ or less, lower calibration\.nsamples to 3/);
    // Following the advice works: the suggested maxlen gives nsamples rows.
    const suggested = Number(/to (\d+) or less/.exec(issue.fix ?? '')![1]);
    const fixed = await convert(root, await configFor(root, ['id', 'fin'], { calibration: { nsamples: 8, maxlen: suggested } }));
    assert.ok((await fixed.rows('calibration.jsonl')).length >= 8);
  } finally {
    await cleanup(root);
  }
});

/** LLaMA-Factory's dataset_info.json vocabulary (data/README.md and data/parser.py DatasetAttr). */
const LF_ENTRY_KEYS = new Set(['hf_hub_url', 'ms_hub_url', 'om_hub_url', 'script_url', 'cloud_file_name', 'file_name', 'formatting', 'ranking', 'subset', 'split', 'folder', 'num_samples', 'columns', 'tags']);
const LF_FORMATTING = new Set(['alpaca', 'sharegpt', 'openai']);
const LF_COLUMNS = {
  alpaca: new Set(['prompt', 'query', 'response', 'history', 'system', 'tools', 'images', 'videos', 'audios', 'chosen', 'rejected', 'kto_tag']),
  sharegpt: new Set(['messages', 'system', 'tools', 'images', 'videos', 'audios', 'chosen', 'rejected', 'kto_tag']),
};
const LF_TAGS = new Set(['role_tag', 'content_tag', 'user_tag', 'assistant_tag', 'observation_tag', 'function_tag', 'system_tag']);

test("dataset_info.json entries use LLaMA-Factory's exact fields and name real files and columns", async () => {
  const sources = await loadDatasetSources(repoRoot, ['identity', 'fintech', 'support-sharegpt']);
  const config: ConvertConfig = {
    pipeline: 'llama3-fintech',
    sources: sources.map((s) => ({ name: s.name, descriptor: s.descriptor, files: s.files.map(({ path, sha256, size }) => ({ path, sha256, size })) })),
    templateVars: { name: '小聚', author: 'Aron' },
    seed: 42,
    split: { validation: 0.02, test: 0.1 },
    cutoffLen: 1024,
    calibration: { nsamples: 8, maxlen: 256, source: 'fintech' },
  };
  const root = await tempRepo({});
  try {
    const out = await convert(repoRoot, config, { outDir: join(root, 'convert') });
    const info = JSON.parse(await readFile(join(root, 'convert', 'dataset_info.json'), 'utf8')) as Record<string, Record<string, unknown>>;
    assert.deepEqual(Object.keys(info), [
      'identity', 'identity.validation', 'identity.test',
      'fintech', 'fintech.validation', 'fintech.test',
      'support-sharegpt', 'support-sharegpt.validation', 'support-sharegpt.test',
      'calibration',
    ]);
    for (const [name, entry] of Object.entries(info)) {
      for (const key of Object.keys(entry)) assert.ok(LF_ENTRY_KEYS.has(key), `${name}: ${key} is not a dataset_info field`);
      assert.ok(LF_FORMATTING.has(entry['formatting'] as string), name);
      const formatting = entry['formatting'] as 'alpaca' | 'sharegpt';
      const columns = entry['columns'] as Record<string, string>;
      for (const key of Object.keys(columns)) assert.ok(LF_COLUMNS[formatting].has(key), `${name}: column ${key}`);
      if (entry['tags']) for (const key of Object.keys(entry['tags'] as object)) assert.ok(LF_TAGS.has(key), `${name}: tag ${key}`);
      // Every mapped column exists in every row of the file it names.
      const fileRows = (await readFile(join(root, 'convert', entry['file_name'] as string), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.ok(fileRows.length > 0, `${name} is empty`);
      for (const row of fileRows) for (const field of Object.values(columns)) assert.ok(field in row, `${name}: row lacks ${field}`);
      if (formatting === 'sharegpt') {
        const tags = entry['tags'] as Record<string, string>;
        for (const row of fileRows) {
          const msgs = row[columns['messages']!] as Record<string, string>[];
          msgs.forEach((m, i) => {
            assert.ok(tags['role_tag']! in m && tags['content_tag']! in m);
            // LLaMA-Factory's rule: user/observation at even positions, assistant/function at odd.
            const expected = i % 2 === 0 ? [tags['user_tag'], tags['observation_tag']] : [tags['assistant_tag'], tags['function_tag']];
            assert.ok(expected.includes(m[tags['role_tag']!]), `${name}: turn ${i} is ${m[tags['role_tag']!]}`);
          });
          assert.equal(msgs.length % 2, 0);
        }
      }
    }
    assert.deepEqual(info['identity'], { file_name: 'identity.jsonl', formatting: 'alpaca', columns: { prompt: 'instruction', query: 'input', response: 'output' } });
    assert.deepEqual(info['support-sharegpt.test'], {
      file_name: 'support-sharegpt.test.jsonl',
      formatting: 'sharegpt',
      columns: { messages: 'conversations', system: 'system' },
      tags: { role_tag: 'from', content_tag: 'value', user_tag: 'human', assistant_tag: 'gpt', observation_tag: 'observation', function_tag: 'function_call', system_tag: 'system' },
    });
    assert.deepEqual(info['calibration'], { file_name: 'calibration.jsonl', formatting: 'alpaca', columns: { prompt: 'text' } });
    // The example datasets are clean: nothing quarantined, placeholders all filled.
    assert.equal(out.result.rows_quarantined, 0);
    const identity = await readFile(join(root, 'convert', 'identity.jsonl'), 'utf8');
    assert.doesNotMatch(identity, /\{\{/);
    assert.match(identity, /小聚/);
    assert.match(identity, /Aron/);
  } finally {
    await cleanup(root);
  }
});

test('publication is atomic: work folder renamed, then SHA256SUMS and the marker; manifest carries counts and digests', async () => {
  const root = await tempRepo({ 'datasets/a/dataset.yaml': alpacaYaml('a.jsonl'), 'datasets/a/a.jsonl': jsonl(rowsOf(20)) });
  try {
    const out = await convert(root, await configFor(root, ['a'], { split: { validation: 2, test: 3 } }), { stage: { stage: 'convert', hash: 'abc123' } });
    assert.deepEqual(await listDir(dirname(out.outDir)), ['convert'], 'no partial folder is left behind');
    const files = await listDir(out.outDir);
    assert.deepEqual(files, [COMPLETION_MARKER, 'SHA256SUMS', 'a.jsonl', 'a.test.jsonl', 'a.validation.jsonl', 'dataset_info.json', 'manifest.json', 'quarantine.jsonl']);
    const marker = JSON.parse(await readFile(join(out.outDir, COMPLETION_MARKER), 'utf8'));
    assert.deepEqual(marker, { stage: 'convert', hash: 'abc123', files: 6 });
    const sums = (await readFile(join(out.outDir, 'SHA256SUMS'), 'utf8')).trim().split('\n');
    assert.equal(sums.length, 6);
    for (const line of sums) {
      const [digest, name] = line.split('  ');
      assert.equal(createHash('sha256').update(await readFile(join(out.outDir, name!))).digest('hex'), digest, name);
    }
    const manifest = JSON.parse(await readFile(join(out.outDir, 'manifest.json'), 'utf8'));
    assert.equal(manifest.rows_in, 20);
    assert.equal(manifest.rows_out, 20);
    assert.equal(manifest.rows_quarantined, 0);
    assert.deepEqual(manifest.sources.a.splits, { train: 15, validation: 2, test: 3 });
    assert.match(manifest.token_estimate.upper, /1\.5 \* cjk_chars/);
    assert.equal(manifest.files['a.jsonl'].rows, 15);
    assert.equal(manifest.files['a.jsonl'].sha256, sums.find((l) => l.endsWith('  a.jsonl'))!.split('  ')[0]);
    assert.equal(manifest.sources.a.files[0].sha256, createHash('sha256').update(await readFile(join(root, 'datasets/a/a.jsonl'))).digest('hex'));
  } finally {
    await cleanup(root);
  }
});

test('a failed conversion publishes nothing and leaves no work folder', async () => {
  const root = await tempRepo({ 'datasets/a/dataset.yaml': alpacaYaml('a.jsonl'), 'datasets/a/a.jsonl': 'not json at all\n' });
  try {
    await convertIssues(root, await configFor(root, ['a']));
    assert.deepEqual(await listDir(join(root, 'out')), []);
  } finally {
    await cleanup(root);
  }
});

test('with a work folder (under the stage wrapper) convert only writes its files: publication is the caller’s', async () => {
  const root = await tempRepo({ 'datasets/a/dataset.yaml': alpacaYaml('a.jsonl'), 'datasets/a/a.jsonl': jsonl(rowsOf(5)) });
  try {
    const work = join(root, 'out', 'convert.partial');
    const result = await convertCommand({ config: await configFor(root, ['a']), repoRoot: root, workDir: work, log: () => {} });
    assert.equal(result.cached, false);
    if (!result.cached) {
      assert.equal(result.result.dir, work);
      assert.equal(result.result.marker, undefined);
    }
    assert.deepEqual(await listDir(join(root, 'out')), ['convert.partial'], 'nothing renamed');
    assert.deepEqual(await listDir(work), ['a.jsonl', 'a.test.jsonl', 'a.validation.jsonl', 'dataset_info.json', 'manifest.json', 'quarantine.jsonl']);
    await assert.rejects(convertCommand({ config: await configFor(root, ['a']), repoRoot: root, workDir: work, outDir: join(root, 'o'), log: () => {} }), (e: unknown) => e instanceof ConvertError && e.issues[0]!.code === 'convert.output');
  } finally {
    await cleanup(root);
  }
});

test('inputs are verified against the compiled digests', async () => {
  const root = await tempRepo({ 'datasets/a/dataset.yaml': alpacaYaml('a.jsonl'), 'datasets/a/a.jsonl': jsonl(rowsOf(3)) });
  try {
    const config = await configFor(root, ['a']);
    await writeFile(join(root, 'datasets/a/a.jsonl'), jsonl(rowsOf(4)));
    const issues = await convertIssues(root, config);
    assert.equal(issues.length, 1);
    assert.equal(issues[0]!.code, 'convert.input-digest');
    assert.match(issues[0]!.fix ?? '', /tunepipe synth/);
  } finally {
    await cleanup(root);
  }
});

test('cluster layout: ConfigMap-delivered gzip files and fetched remote files', async () => {
  const local = jsonl(rowsOf(4, 'local'));
  const remote = jsonl(rowsOf(3, 'remote'));
  const sha = (s: string) => createHash('sha256').update(s).digest('hex');
  const root = await tempRepo({});
  try {
    // As the Job sees them: the source's ConfigMap at /inputs/d (items <file>.gz), fetched files at /inputs/.remote/d.
    const inputs = join(root, 'inputs');
    await mkdir(join(inputs, 'd'), { recursive: true });
    await writeFile(join(inputs, deliveredPath('d', 'a.jsonl')), gzipSync(local));
    await mkdir(join(inputs, '.remote', 'd'), { recursive: true });
    await writeFile(join(inputs, '.remote', 'd', 'big.jsonl'), remote);
    const config: ConvertConfig = {
      pipeline: 'p',
      sources: [
        {
          name: 'd',
          descriptor: { format: 'alpaca', license: 'MIT', files: ['a.jsonl', { path: 'big.jsonl', url: 's3://bucket/big.jsonl', sha256: sha(remote) }] },
          files: [
            { path: 'a.jsonl', sha256: sha(local), size: Buffer.byteLength(local) },
            { path: 'big.jsonl', sha256: sha(remote), size: Buffer.byteLength(remote) },
          ],
        },
      ],
      templateVars: {},
      seed: 1,
      split: { validation: 0, test: 0 },
      cutoffLen: 512,
    };
    const logs: string[] = [];
    const result = await convertCommand({ config, inputsDir: inputs, outDir: join(root, 'out'), log: (l) => logs.push(l), stage: { stage: 'convert', hash: 'h1' } });
    assert.equal(result.cached, false);
    if (!result.cached) assert.equal(result.result.rows_out, 7);
    // Same hash again: skipped via the completion marker.
    const again = await convertCommand({ config, inputsDir: inputs, outDir: join(root, 'out'), log: (l) => logs.push(l), stage: { stage: 'convert', hash: 'h1' } });
    assert.equal(again.cached, true);
    assert.match(logs[logs.length - 1]!, /already complete/);
    // A different hash replaces the old output.
    const changed = await convertCommand({ config, inputsDir: inputs, outDir: join(root, 'out'), log: () => {}, stage: { stage: 'convert', hash: 'h2' } });
    assert.equal(changed.cached, false);
    assert.equal(JSON.parse(await readFile(join(root, 'out', COMPLETION_MARKER), 'utf8')).hash, 'h2');
  } finally {
    await cleanup(root);
  }
});

test('convertFromConfigFile (the Job entry point) and bad configs give issues, not stacks', async () => {
  const root = await tempRepo({ 'bad.json': '{ not json', 'wrong.json': JSON.stringify({ pipeline: 'p', sources: [], seed: -1 }) });
  try {
    await assert.rejects(convertFromConfigFile({ configPath: join(root, 'missing.json'), inputsDir: root, outDir: join(root, 'o') }), (e: unknown) => e instanceof ConvertError && e.issues[0]!.code === 'convert.config-missing');
    await assert.rejects(convertFromConfigFile({ configPath: join(root, 'bad.json'), inputsDir: root, outDir: join(root, 'o') }), (e: unknown) => e instanceof ConvertError && e.issues[0]!.code === 'convert.config-json');
    await assert.rejects(convertFromConfigFile({ configPath: join(root, 'wrong.json'), inputsDir: root, outDir: join(root, 'o') }), (e: unknown) => {
      assert.ok(e instanceof ConvertError);
      const paths = e.issues.map((i) => i.path).join('\n');
      assert.match(paths, /sources/);
      assert.match(paths, /seed/);
      assert.match(paths, /templateVars/);
      return true;
    });
    const parsed = parseConvertConfig({ pipeline: 'p', sources: [], templateVars: {}, seed: 1, split: { validation: 0.6, test: 0.5 }, cutoffLen: 10, calibration: { nsamples: 1, maxlen: 1, source: 'nope' } });
    assert.equal(parsed.ok, false);
    if (!parsed.ok) {
      assert.ok(parsed.issues.some((i) => /sum < 1/.test(i.message)));
    }
    assert.ok(!(await stat(join(root, 'o')).catch(() => undefined)));
  } finally {
    await cleanup(root);
  }
});

test('local run from the repository: convertCommand with repoRoot converts the example datasets', async () => {
  const sources = await loadDatasetSources(repoRoot, ['identity', 'fintech']);
  const config = {
    pipeline: 'llama3-fintech',
    sources: sources.map((s) => ({ name: s.name, descriptor: s.descriptor, files: s.files.map(({ path, sha256, size }) => ({ path, sha256, size })) })),
    templateVars: { name: '小聚', author: 'Aron' },
    seed: 42,
    split: { validation: 0.02, test: 0.1 },
    cutoffLen: 1024,
    calibration: { nsamples: 8, maxlen: 256, source: 'fintech' },
  };
  const root = await tempRepo({});
  try {
    const logs: string[] = [];
    const r = await convertCommand({ config, repoRoot, outDir: join(root, 'convert'), log: (l) => logs.push(l) });
    assert.equal(r.cached, false);
    if (r.cached) return;
    assert.equal(r.result.rows_in, 65 + 86);
    assert.equal(r.result.rows_quarantined, 0);
    assert.ok(logs.some((l) => /^identity: 65 rows in → \d+ train \/ \d+ validation \/ \d+ test, 0 quarantined$/.test(l)), logs.join('\n'));
    assert.ok(logs.some((l) => l.endsWith('calibration.jsonl  (8 rows)')), logs.join('\n'));
    assert.ok(logs.some((l) => l === `rows_in 151 = rows_out 151 + rows_quarantined 0 ✓`));
    const entries = await readdir(join(root, 'convert'));
    assert.ok(entries.includes('fintech.test.jsonl'));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

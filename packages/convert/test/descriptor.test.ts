import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDescriptor } from '../src/index.ts';

const at = 'datasets/x/dataset.yaml';

test('valid descriptors of every format parse', () => {
  const cases = [
    'format: alpaca\nfiles: [a.json, b.jsonl.gz]\nlicense: MIT\ncolumns: { instruction: question, output: answer }\n',
    'format: sharegpt\nfiles:\n  - chats.jsonl\n  - { path: big.jsonl, url: "s3://my-bucket/data/big.jsonl", sha256: ' + '"' + 'a'.repeat(64) + '"' + ', size: 123 }\nlicense: CC-BY-4.0\n',
    'format: csv\nfiles: [qa.csv]\nlicense: proprietary\ncolumns: { instruction: q, output: a, input: context }\n',
    'format: tsv\nfiles: [qa.tsv]\nlicense: MIT\ncolumns: { instruction: q, output: a }\n',
    'format: text\nfiles: [corpus.txt, more.jsonl]\nlicense: MIT\nseparator: line\n',
    'format: alpaca\nfiles:\n  - { path: x.jsonl, url: "hf://datasets/org/name@0123abc/train.jsonl", sha256: "' + 'b'.repeat(64) + '" }\nlicense: MIT\n',
  ];
  for (const text of cases) {
    const r = parseDescriptor(text, at);
    assert.ok(r.ok, `${text}\n${r.ok ? '' : JSON.stringify(r.issues, null, 2)}`);
  }
});

test('a bad descriptor reports every problem at once, with file:line, value and fix', () => {
  const text = ['format: alpaca', 'files: [data.jsonl]', 'licence: MIT', 'colums: {}', 'placeholders: maybe', ''].join('\n');
  const r = parseDescriptor(text, at);
  assert.equal(r.ok, false);
  if (r.ok) return;
  const byPath = new Map(r.issues.map((i) => [i.path, i]));
  const licence = byPath.get(`${at}:3 (licence)`);
  assert.ok(licence, JSON.stringify(r.issues, null, 2));
  assert.equal(licence.fix, "did you mean 'license'?");
  assert.equal(licence.value, 'MIT');
  assert.equal(byPath.get(`${at}:4 (colums)`)?.fix, "did you mean 'columns'?");
  const placeholders = r.issues.find((i) => i.path.startsWith(`${at}:5`));
  assert.ok(placeholders);
  assert.equal(placeholders.value, 'maybe');
  // license is missing as well (the misspelt key does not count).
  assert.ok(r.issues.some((i) => i.path.includes('(license)') && i.fix?.includes('license')));
  assert.ok(r.issues.length >= 4);
});

test('an unknown format suggests the closest one', () => {
  const r = parseDescriptor('format: sharegtp\nfiles: [a.jsonl]\nlicense: MIT\n', at);
  assert.equal(r.ok, false);
  if (r.ok) return;
  const issue = r.issues.find((i) => i.path.includes('(format)'));
  assert.ok(issue, JSON.stringify(r.issues));
  assert.match(issue.path, /:1 \(format\)$/);
  assert.equal(issue.fix, "did you mean 'sharegpt'?");
});

test('a missing format says which formats exist', () => {
  const r = parseDescriptor('files: [a.jsonl]\nlicense: MIT\n', at);
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.equal(r.issues[0]!.code, 'dataset.missing');
  assert.match(r.issues[0]!.path, /\(format\)$/);
  assert.match(r.issues[0]!.fix ?? '', /alpaca, sharegpt, csv, tsv, text/);
});

test('csv needs a column mapping; file extensions must match the format', () => {
  const csv = parseDescriptor('format: csv\nfiles: [qa.csv]\nlicense: MIT\n', at);
  assert.equal(csv.ok, false);
  if (!csv.ok) assert.match(csv.issues[0]!.fix ?? '', /columns: \{ instruction: question, output: answer \}/);
  const ext = parseDescriptor('format: alpaca\nfiles: [qa.csv, ok.json]\nlicense: MIT\n', at);
  assert.equal(ext.ok, false);
  if (!ext.ok) {
    assert.equal(ext.issues.length, 1);
    assert.equal(ext.issues[0]!.path, `${at}:2 (files[0])`);
    assert.match(ext.issues[0]!.fix ?? '', /format: csv/);
  }
});

test('remote files must pin sha256; paths stay inside the dataset folder', () => {
  const r = parseDescriptor(
    ['format: alpaca', 'files:', '  - { path: big.jsonl, url: "https://example.com/big.jsonl" }', '  - ../escape.jsonl', '  - /abs.jsonl', 'license: MIT', ''].join('\n'),
    at,
  );
  assert.equal(r.ok, false);
  if (r.ok) return;
  const codes = r.issues.map((i) => i.code).sort();
  assert.deepEqual(codes, ['dataset.file-path', 'dataset.file-path', 'dataset.remote-unpinned']);
  const unpinned = r.issues.find((i) => i.code === 'dataset.remote-unpinned')!;
  assert.match(unpinned.fix ?? '', /sha256sum/);
});

test('unsupported remote schemes are rejected with the accepted forms', () => {
  const r = parseDescriptor(`format: alpaca\nfiles:\n  - { path: a.jsonl, url: "ftp://x/a.jsonl", sha256: "${'c'.repeat(64)}" }\nlicense: MIT\n`, at);
  assert.equal(r.ok, false);
  if (!r.ok) assert.match(r.issues[0]!.message, /https:\/\/…, s3:\/\/bucket\/key, hf:\/\/datasets/);
});

test('YAML syntax errors are located', () => {
  const r = parseDescriptor('format: alpaca\nfiles: [a.jsonl\nlicense: MIT\n', at);
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.match(r.issues[0]!.path, /^datasets\/x\/dataset\.yaml:\d+$/);
    assert.equal(r.issues[0]!.code, 'dataset.yaml-syntax');
  }
});

test('encoding: { invalid } is quarantine or replace, nothing else', () => {
  for (const invalid of ['quarantine', 'replace']) assert.ok(parseDescriptor(`format: alpaca\nfiles: [a.jsonl]\nlicense: MIT\nencoding: { invalid: ${invalid} }\n`, at).ok);
  const r = parseDescriptor('format: alpaca\nfiles: [a.jsonl]\nlicense: MIT\nencoding: { invalid: drop }\n', at);
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.deepEqual(r.issues.map((i) => i.path), [`${at}:4 (encoding.invalid)`]);
});

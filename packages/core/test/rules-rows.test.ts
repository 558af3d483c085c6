import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { parse } from 'yaml';
import type { DatasetSourceInput } from '../src/context.ts';
import { ROW_ISSUE_CAP, rowFieldIssues, rowShape } from '../src/rules/index.ts';

const AT = 'stages.convert.sources[0]';

function source(descriptor: Record<string, unknown>, files: Record<string, string | Buffer | null>): DatasetSourceInput {
  return {
    name: 'src',
    digest: 'digest',
    descriptor: { license: 'CC0-1.0', files: Object.keys(files), ...descriptor },
    files: Object.entries(files).map(([path, content]) =>
      content === null
        ? { path, sha256: '0'.repeat(64), size: 1, url: `https://example.com/${path}` }
        : { path, sha256: '0'.repeat(64), size: content.length, gzipBase64: gzipSync(content).toString('base64') },
    ),
  };
}

const issuesOf = (descriptor: Record<string, unknown>, files: Record<string, string | Buffer | null>) => rowFieldIssues('src', source(descriptor, files), AT);
const brief = (issues: ReturnType<typeof issuesOf>) => issues.map((i) => [i.code, i.severity ?? 'error', i.value]);
const jsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

const root = fileURLToPath(new URL('../../..', import.meta.url));

test("the repo's own datasets have no row problems", () => {
  for (const name of ['fintech', 'identity', 'support-handbook', 'support-sharegpt']) {
    const dir = join(root, 'datasets', name);
    const descriptor = parse(readFileSync(join(dir, 'dataset.yaml'), 'utf8')) as { files: string[] };
    const files = Object.fromEntries(descriptor.files.map((f) => [f, readFileSync(join(dir, f))]));
    assert.deepEqual(rowFieldIssues(name, source(descriptor, files), AT), [], name);
  }
});

test('alpaca rows without output are warnings with the file, the line and the field', () => {
  const rows = jsonl([
    { instruction: 'a', output: 'b' },
    { instruction: 'c' },
    { instruction: 'd', output: '   ' },
    { instruction: 'e', output: 'f' },
  ]);
  const issues = issuesOf({ format: 'alpaca' }, { 'data/train.jsonl': `${rows}\n{"instruction": 1, "output": "x"}\n{"instruction": "g", "output": "h"` });
  assert.deepEqual(brief(issues), [
    ['dataset.row-field', 'warning', 'datasets/src/data/train.jsonl:2'],
    ['dataset.row-field', 'warning', 'datasets/src/data/train.jsonl:3'],
    ['dataset.row-field', 'warning', 'datasets/src/data/train.jsonl:6'],
    ['dataset.row-parse', 'warning', 'datasets/src/data/train.jsonl:7'],
  ]);
  assert.equal(issues[0]!.path, AT);
  assert.equal(issues[0]!.message, 'datasets/src/data/train.jsonl:2: `output` is missing; the converter quarantines the row');
  assert.match(issues[1]!.message, /`output` is empty/);
  assert.match(issues[2]!.message, /`instruction` is a number, not text/);
  assert.match(issues[3]!.message, /not valid JSON/);
  assert.match(issues[0]!.fix!, /columns: \{ output: <your field> \}/);
});

test('a file none of whose rows is usable is one error naming the field', () => {
  // Rows written with question/answer but no column mapping: a mapping mistake, not dirty data.
  const issues = issuesOf({ format: 'alpaca' }, { 'qa.jsonl': jsonl([{ question: 'a', answer: 'b' }, { question: 'c', answer: 'd' }]), 'ok.jsonl': jsonl([{ instruction: 'a', output: 'b' }]) });
  assert.deepEqual(brief(issues), [['dataset.row-field', 'error', 'datasets/src/qa.jsonl:1']]);
  assert.match(issues[0]!.message, /^no row of datasets\/src\/qa\.jsonl is usable \(2 rows: 2 lack a usable `instruction`\); first at line 1: `instruction` is missing$/);
  // With the mapping, the same rows are fine.
  assert.deepEqual(issuesOf({ format: 'alpaca', columns: { instruction: 'question', output: 'answer' } }, { 'qa.jsonl': jsonl([{ question: 'a', answer: 'b' }]) }), []);
  const mapped = issuesOf({ format: 'alpaca', columns: { instruction: 'question', output: 'answer' } }, { 'qa.jsonl': jsonl([{ question: 'a', answer: 'b' }, { question: 'c' }]) });
  assert.match(mapped[0]!.message, /`answer` \(output\) is missing/);
});

test('issues are capped per file, then counted', () => {
  const rows = [{ instruction: 'ok', output: 'ok' }, ...Array.from({ length: 30 }, (_, i) => ({ instruction: `q${i}` }))];
  const issues = issuesOf({ format: 'alpaca' }, { 'big.jsonl': jsonl(rows) });
  assert.equal(issues.length, ROW_ISSUE_CAP + 1);
  assert.ok(issues.every((i) => i.severity === 'warning'));
  assert.equal(issues[0]!.value, 'datasets/src/big.jsonl:2');
  assert.equal(issues[ROW_ISSUE_CAP - 1]!.value, `datasets/src/big.jsonl:${ROW_ISSUE_CAP + 1}`);
  assert.equal(issues[ROW_ISSUE_CAP]!.message, 'datasets/src/big.jsonl: 10 more rows cannot be used (30 of 31 in all); the converter quarantines them');
});

test('JSON arrays report the line each element starts on', () => {
  const text = `[\n  {"instruction": "a", "output": "b"},\n  {\n    "instruction": "c, with [brackets] and \\"quotes\\"",\n    "outptu": "d"\n  },\n  {"instruction": "e", "output": "f"}\n]\n`;
  const issues = issuesOf({ format: 'alpaca' }, { 'rows.json': text });
  assert.deepEqual(brief(issues), [['dataset.row-field', 'warning', 'datasets/src/rows.json:3']]);
  assert.deepEqual(issuesOf({ format: 'alpaca' }, { 'rows.json': '[]' }).map((i) => i.message), ['datasets/src/rows.json has no rows']);
  const open = issuesOf({ format: 'alpaca' }, { 'rows.json': '[{"instruction": "a", "output": "b"},\n{"instruction": "c"' });
  assert.deepEqual(brief(open), [['dataset.row-field', 'error', 'datasets/src/rows.json:2']]);
  assert.match(open[0]!.message, /the array is not closed/);
});

test('a file the converter refuses whole is an error', () => {
  const array = issuesOf({ format: 'alpaca' }, { 'rows.jsonl': '[{"instruction": "a", "output": "b"}]\n' });
  assert.deepEqual(brief(array), [['dataset.row-field', 'error', 'datasets/src/rows.jsonl:1']]);
  assert.match(array[0]!.message, /is a JSON array, not JSON Lines/);
  assert.equal(array[0]!.fix, 'name the file .json, or write one object per line');
  const lines = issuesOf({ format: 'alpaca' }, { 'rows.json': '{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": "d"}\n' });
  assert.match(lines[0]!.message, /not a JSON array of rows \(it starts with `\{`\)/);
  assert.deepEqual(brief(issuesOf({ format: 'alpaca' }, { 'empty.jsonl': '\n\n' })), [['dataset.row-field', 'error', 'datasets/src/empty.jsonl']]);
});

test('sharegpt rows need a message list of complete turns, in either style', () => {
  const good = [
    { conversations: [{ from: 'human', value: 'hi' }, { from: 'gpt', value: 'hello' }] },
    { messages: [{ role: 'system', content: 's' }, { role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }] },
  ];
  const bad = [
    { conversation: [{ from: 'human', value: 'hi' }] },
    { conversations: [{ from: 'human', value: 'hi' }, { from: 'gpt' }] },
    { messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: ['part'] }] },
    { messages: [] },
    { conversations: 'hi' },
  ];
  const issues = issuesOf({ format: 'sharegpt' }, { 'chat.jsonl': jsonl([...good, ...bad]) });
  assert.deepEqual(issues.map((i) => i.message.replace(/; the converter.*/, '')), [
    'datasets/src/chat.jsonl:3: the message list is missing (neither `conversations` nor `messages`)',
    'datasets/src/chat.jsonl:4: `conversations[1].value` is missing',
    'datasets/src/chat.jsonl:5: `messages[1].content` is a list, not text',
    'datasets/src/chat.jsonl:6: `messages` has no messages',
    'datasets/src/chat.jsonl:7: `conversations` is a string, not a list of messages',
  ]);
  const mapped = issuesOf({ format: 'sharegpt', columns: { messages: 'dialog' } }, { 'chat.jsonl': jsonl([{ dialog: good[0]!.conversations }, good[0]]) });
  assert.deepEqual(mapped.map((i) => i.message.replace(/; the converter.*/, '')), ['datasets/src/chat.jsonl:2: the message list `dialog` is missing']);
});

test('csv and tsv: the header must name the mapped columns, and their cells must not be blank', () => {
  const columns = { instruction: 'question', output: 'answer' };
  const csv = 'question,answer,notes\n"What is ""APR""?","The yearly rate, with fees",x\n"multi\nline question",,y\nonly,two\nq,a,n\n';
  const issues = issuesOf({ format: 'csv', columns }, { 'faq.csv': csv });
  assert.deepEqual(brief(issues), [
    ['dataset.row-field', 'warning', 'datasets/src/faq.csv:3'],
    ['dataset.row-parse', 'warning', 'datasets/src/faq.csv:5'],
  ]);
  assert.match(issues[0]!.message, /column 'answer' \(output\) is empty/);
  assert.match(issues[1]!.message, /the row has 2 fields, the header 3/);

  const header = issuesOf({ format: 'csv', columns: { instruction: 'question', output: 'reply' } }, { 'faq.csv': csv });
  assert.deepEqual(brief(header), [['dataset.row-field', 'error', 'datasets/src/faq.csv:1']]);
  assert.match(header[0]!.message, /the header row lacks the column 'reply' \(output\)/);

  assert.deepEqual(issuesOf({ format: 'tsv', columns }, { 'faq.tsv': 'question\tanswer\r\nq, with comma\ta\r\n' }), []);
});

test('text corpora: .jsonl rows need their text field, .txt files need text', () => {
  const issues = issuesOf({ format: 'text' }, { 'c.jsonl': jsonl([{ text: 'a' }, { body: 'b' }]), 'd.txt': 'a document\n\nanother\n', 'e.txt': '  \n' });
  assert.deepEqual(brief(issues), [
    ['dataset.row-field', 'warning', 'datasets/src/c.jsonl:2'],
    ['dataset.row-field', 'error', 'datasets/src/e.txt'],
  ]);
  assert.deepEqual(issuesOf({ format: 'text', columns: { text: 'body' } }, { 'c.jsonl': jsonl([{ body: 'b' }]) }), []);
});

test('remote files are not read at synth time; gzipped data files are unwrapped', () => {
  assert.deepEqual(issuesOf({ format: 'alpaca' }, { 'remote.jsonl': null }), []);
  const gz = gzipSync(jsonl([{ instruction: 'a', output: 'b' }, { instruction: 'c' }]));
  assert.deepEqual(brief(issuesOf({ format: 'alpaca' }, { 'rows.jsonl.gz': gz })), [['dataset.row-field', 'warning', 'datasets/src/rows.jsonl.gz:2']]);
});

test('rowShape says what each format needs, and nothing for a file the format cannot read', () => {
  assert.deepEqual(rowShape({ format: 'alpaca', columns: { output: 'answer' } }, 'a.json'), {
    kind: 'object',
    format: 'alpaca',
    fields: [
      { name: 'instruction', label: 'instruction' },
      { name: 'answer', label: 'output' },
    ],
  });
  assert.deepEqual(rowShape({ format: 'sharegpt' }, 'a.jsonl.gz'), { kind: 'messages', format: 'sharegpt', field: undefined });
  assert.equal(rowShape({ format: 'alpaca' }, 'a.csv'), undefined);
  assert.equal(rowShape({ format: 'csv' }, 'a.csv'), undefined, 'csv needs its column mapping');
  assert.equal(rowShape({ format: 'parquet' }, 'a.parquet'), undefined);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { forEachLine, readCsv, readJsonArray, type CsvRecord, type RawRecord } from '../src/readers.ts';
import { alpacaYaml, cleanup, configFor, convert, jsonl, tempRepo } from './helpers.ts';

const bytes = (...parts: (string | number[])[]): Buffer => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));
/** The same bytes one at a time: every character and every sequence cut at every place. */
const trickle = (data: Buffer): Readable => Readable.from([...data].map((b) => Buffer.from([b])));

test('a row holding bytes that are not UTF-8 is quarantined with the byte offset; U+FFFD written as UTF-8 is kept', async () => {
  const good = JSON.stringify({ instruction: 'Q1', output: 'A1' });
  const genuine = JSON.stringify({ instruction: 'Replacement \uFFFD char', output: 'is text' });
  const file = bytes(`${good}\n`, '{"instruction": "caf', [0xe9], `", "output": "Latin-1"}\n`, `${genuine}\n`);
  const root = await tempRepo({ 'datasets/a/dataset.yaml': alpacaYaml('a.jsonl'), 'datasets/a/a.jsonl': file });
  try {
    const out = await convert(root, await configFor(root, ['a']));
    const q = await out.quarantine();
    assert.deepEqual(q.map((e) => [e.record, e.line, e.reason]), [[2, 2, 'invalid_utf8']]);
    assert.match(q[0]!.detail, new RegExp(`^not valid UTF-8 at byte offset ${good.length + 1 + '{"instruction": "caf'.length};`));
    assert.deepEqual((await out.rows('a.jsonl')).map((r) => r['instruction']), ['Q1', 'Replacement \uFFFD char']);
    assert.equal(out.result.rows_in, 3);
    assert.equal(out.result.rows_in, out.result.rows_out + out.result.rows_quarantined);
  } finally {
    await cleanup(root);
  }
});

test('every reader: JSON arrays (one element of a one-line array), CSV rows, text documents, gzip', async () => {
  const array = bytes('[{"instruction":"a","output":"b"},{"instruction":"', [0xc3, 0x28], '","output":"d"},{"instruction":"e","output":"f"}]');
  const csv = bytes('q,a\nfine,row\nbad ', [0xff, 0xfe], ' row,x\n"quoted \uFFFD",kept\n');
  const text = bytes('\uFEFFFirst document.\n\nSecond ', [0x80], ' document.\n\nThird.\n');
  const gz = gzipSync(bytes('{"instruction": "z", "output": "', [0xf8], '"}\n{"instruction": "y", "output": "w"}\n'));
  const root = await tempRepo({
    'datasets/j/dataset.yaml': alpacaYaml('j.json'),
    'datasets/j/j.json': array,
    'datasets/c/dataset.yaml': 'format: csv\nfiles: [c.csv]\nlicense: MIT\ncolumns: { instruction: q, output: a }\n',
    'datasets/c/c.csv': csv,
    'datasets/t/dataset.yaml': 'format: text\nfiles: [t.txt]\nlicense: MIT\n',
    'datasets/t/t.txt': text,
    'datasets/g/dataset.yaml': alpacaYaml('g.jsonl.gz'),
    'datasets/g/g.jsonl.gz': gz,
  });
  try {
    const out = await convert(root, await configFor(root, ['j', 'c', 't', 'g']));
    const q = await out.quarantine();
    const offset = (e: { detail: string }) => Number(/byte offset (\d+)/.exec(e.detail)?.[1]);
    assert.deepEqual(q.map((e) => [e.source, e.record, e.reason, offset(e)]), [
      ['j', 2, 'invalid_utf8', array.indexOf(0xc3)],
      ['c', 2, 'invalid_utf8', csv.indexOf(0xff)],
      ['t', 2, 'invalid_utf8', text.indexOf(0x80)],
      ['g', 1, 'invalid_utf8', 32],
    ]);
    assert.match(q[3]!.detail, /of the decompressed file/);
    assert.deepEqual((await out.rows('c.jsonl')).map((r) => r['instruction']), ['fine', 'quoted \uFFFD']);
    assert.deepEqual((await out.rows('t.jsonl')).map((r) => r['text']), ['First document.', 'Third.'], 'the byte order mark is not text');
    for (const file of ['j.jsonl', 'c.jsonl', 't.jsonl', 'g.jsonl']) {
      for (const row of await out.rows(file)) assert.ok(!JSON.stringify(row).includes('\uFFFD') || file === 'c.jsonl', `${file}: ${JSON.stringify(row)}`);
    }
  } finally {
    await cleanup(root);
  }
});

test('`encoding: { invalid: replace }` keeps such rows, with U+FFFD in place of the bad bytes', async () => {
  const root = await tempRepo({
    'datasets/a/dataset.yaml': alpacaYaml('a.jsonl', 'encoding: { invalid: replace }\n'),
    'datasets/a/a.jsonl': bytes('{"instruction": "caf', [0xe9], '", "output": "x"}\n'),
  });
  try {
    const out = await convert(root, await configFor(root, ['a']));
    assert.deepEqual(await out.quarantine(), []);
    assert.deepEqual((await out.rows('a.jsonl')).map((r) => r['instruction']), ['caf\uFFFD']);
  } finally {
    await cleanup(root);
  }
});

test('ShareGPT roles are looked up as names: constructor, toString and __proto__ are wrong roles, not empty ones', async () => {
  const rows = ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf'].map((role, i) => ({
    conversations: [
      { from: 'human', value: `Hi ${i}` },
      { from: role, value: 'Hello' },
    ],
  }));
  const root = await tempRepo({
    'datasets/s/dataset.yaml': 'format: sharegpt\nfiles: [s.jsonl]\nlicense: MIT\n',
    'datasets/s/s.jsonl': jsonl([...rows, { messages: [{ role: 'user', content: 'ok' }, { role: 'assistant', content: 'fine' }] }, { conversations: [{ value: 'no role' }, { from: 'gpt', value: 'x' }] }, { conversations: [{ from: 7, value: 'number role' }, { from: 'gpt', value: 'x' }] }]),
  });
  try {
    const out = await convert(root, await configFor(root, ['s']));
    const q = await out.quarantine();
    assert.deepEqual(q.map((e) => [e.record, e.reason]), [
      [1, 'wrong_role'],
      [2, 'wrong_role'],
      [3, 'wrong_role'],
      [4, 'wrong_role'],
      [5, 'wrong_role'],
      [7, 'missing_field'],
      [8, 'wrong_type'],
    ]);
    assert.equal(q[6]!.detail, '`conversations[0].from` is a number, not text');
    assert.deepEqual(await out.rows('s.jsonl'), [{ conversations: [{ from: 'human', value: 'ok' }, { from: 'gpt', value: 'fine' }] }]);
  } finally {
    await cleanup(root);
  }
});

test('readers find the bad byte whatever the chunking: a byte at a time gives the same records and offsets', async () => {
  const data = bytes('[\uFEFF{"a":"é€😀"}, {"b":"', [0xed, 0xa0, 0x80], '"},\n {"c":"', [0xe2, 0x82], '"}, "\u00e9"]');
  const whole: RawRecord[] = [];
  const bytewise: RawRecord[] = [];
  await readJsonArray(Readable.from([data]), (r) => whole.push(r));
  await readJsonArray(trickle(data), (r) => bytewise.push(r));
  assert.deepEqual(bytewise, whole);
  assert.deepEqual(
    whole.map((r) => [r.record, r.line, r.invalidUtf8]),
    [
      [1, 1, undefined],
      [2, 1, data.indexOf(0xed)],
      [3, 2, data.lastIndexOf(0xe2)],
      [4, 2, undefined],
    ],
  );

  const withBom: RawRecord[] = [];
  await readJsonArray(trickle(bytes([0xef, 0xbb, 0xbf], '[{"x": 1}]')), (r) => withBom.push(r));
  assert.deepEqual(withBom, [{ record: 1, line: 1, raw: '{"x": 1}' }]);

  const lines = bytes('ok é\nbad ', [0xc0, 0xaf], '\n€ fine\nend ', [0xf4, 0x90, 0x80, 0x80]);
  const seen: [string, number][] = [];
  const seenBytewise: [string, number][] = [];
  await forEachLine(Readable.from([lines]), (l, bad) => seen.push([l, bad]));
  await forEachLine(trickle(lines), (l, bad) => seenBytewise.push([l, bad]));
  assert.deepEqual(seenBytewise, seen);
  assert.deepEqual(seen.map(([, bad]) => bad), [-1, lines.indexOf(0xc0), -1, lines.indexOf(0xf4)]);

  const csv = bytes('q,a\n"é, \uFFFD",€\nx', [0xff], ',y\n');
  const records: CsvRecord[] = [];
  await readCsv(trickle(csv), ',', ['q', 'a'], (r) => records.push(r));
  assert.deepEqual(records.map((r) => [r.record, r.invalidUtf8]), [
    [1, undefined],
    [2, csv.indexOf(0xff)],
  ]);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QUARANTINE_REASONS } from '../src/index.ts';
import { alpacaYaml, cleanup, configFor, convert, jsonl, tempRepo } from './helpers.ts';

const good = (i: number) => ({ instruction: `Question ${i}?`, input: '', output: `Answer ${i}.` });

test('every quarantine reason: each bad row lands in quarantine.jsonl with file, record, line, reason and the raw row', async () => {
  const long = 'word '.repeat(2000);
  const alpaca = [
    good(1),
    '{"instruction": "unterminated", "output": ',
    '["not", "an", "object"]',
    { instruction: 'Where is the output?' },
    { instruction: '   ', output: 'blank instruction' },
    { instruction: 42, output: 'number instruction' },
    { instruction: 'Q', output: 'A', history: [['only one']] },
    good(1),
    { instruction: 'Too long?', output: long },
    good(2),
    good(3),
  ];
  const sharegpt = [
    { conversations: [{ from: 'human', value: 'Hi' }, { from: 'gpt', value: 'Hello' }] },
    { conversations: [{ from: 'human', value: 'Hi' }, { from: 'bot', value: 'Hello' }] },
    { conversations: [{ from: 'human', value: 'Hi' }, { from: 'human', value: 'Again' }] },
    { conversations: [{ from: 'human', value: 'Hi' }, { from: 'gpt', value: 'Hello' }, { from: 'human', value: 'Bye' }] },
    { conversations: [{ from: 'human', value: 'Hi' }, { from: 'system', value: 'Late system' }, { from: 'gpt', value: 'Hello' }] },
    { conversations: [] },
    { messages: [{ role: 'user', content: [{ type: 'text', text: 'parts' }] }, { role: 'assistant', content: 'x' }] },
    { conversations: [{ from: 'human', value: 'Second?' }, { from: 'gpt', value: 'Yes.' }] },
  ];
  // A wrong field count is rejected; a quote left open to the end of the file is cut at its own
  // line, and the row after it is read as a row.
  const csv = 'question,answer\nWhat is KYC?,Know your customer.\nextra,fields,here\n"unclosed,quote\nWhat is AML?,Anti-money laundering.\n';
  const root = await tempRepo({
    'datasets/a/dataset.yaml': alpacaYaml('a.jsonl'),
    // The last row holds a byte that is not UTF-8 (0xFF, after `{"instruction": "caf`).
    'datasets/a/a.jsonl': Buffer.concat([Buffer.from(jsonl(alpaca)), Buffer.from('{"instruction": "caf'), Buffer.from([0xff]), Buffer.from('", "output": "latin-1 e"}\n')]),
    'datasets/s/dataset.yaml': 'format: sharegpt\nfiles: [s.jsonl]\nlicense: MIT\n',
    'datasets/s/s.jsonl': jsonl(sharegpt),
    'datasets/c/dataset.yaml': 'format: csv\nfiles: [c.csv]\nlicense: MIT\ncolumns: { instruction: question, output: answer }\n',
    'datasets/c/c.csv': csv,
  });
  try {
    const out = await convert(root, await configFor(root, ['a', 's', 'c'], { cutoffLen: 512, maxSamples: 2 }));
    const q = await out.quarantine();
    const a = q.filter((e) => e.source === 'a').map((e) => [e.record, e.reason]);
    assert.deepEqual(a.slice(0, 8), [
      [2, 'malformed_json'],
      [3, 'wrong_type'],
      [4, 'missing_field'],
      [5, 'empty_field'],
      [6, 'wrong_type'],
      [7, 'wrong_type'],
      [8, 'duplicate'],
      [9, 'too_long'],
    ]);
    assert.equal(a.length, 10);
    assert.deepEqual(a[8], [12, 'invalid_utf8']);
    assert.equal(a[9]![1], 'max_samples');
    const bad = q.find((e) => e.reason === 'invalid_utf8')!;
    const offset = Buffer.byteLength(jsonl(alpaca)) + '{"instruction": "caf'.length;
    assert.match(bad.detail, new RegExp(`^not valid UTF-8 at byte offset ${offset};`));
    assert.equal(bad.raw, '{"instruction": "caf\uFFFD", "output": "latin-1 e"}');
    // maxSamples 2 keeps two of the three valid rows (1, 10, 11); the third is listed, not dropped.
    const unsampled = q.filter((e) => e.source === 'a' && e.reason === 'max_samples');
    assert.equal(unsampled.length, 1);
    assert.ok([1, 10, 11].includes(unsampled[0]!.record));
    assert.ok(unsampled[0]!.row, 'a max_samples entry carries the converted row');

    const dup = q.find((e) => e.reason === 'duplicate')!;
    assert.equal(dup.detail, 'same content as a.jsonl record 1 (line 1)');
    assert.equal(dup.raw, JSON.stringify(good(1)));
    assert.equal(dup.file, 'a.jsonl');
    assert.equal(dup.line, 8);
    assert.match(q.find((e) => e.reason === 'too_long')!.detail, /^about \d+ tokens \(upper estimate\) > cutoff_len 512$/);
    assert.equal(q.find((e) => e.reason === 'malformed_json')!.raw, '{"instruction": "unterminated", "output": ');

    const s = q.filter((e) => e.source === 's').map((e) => [e.record, e.reason]);
    assert.deepEqual(s, [
      [2, 'wrong_role'],
      [3, 'non_alternating'],
      [4, 'non_alternating'],
      [5, 'system_not_first'],
      [6, 'empty_field'],
      [7, 'wrong_type'],
    ]);
    const c = q.filter((e) => e.source === 'c').map((e) => [e.record, e.line, e.reason, e.raw]);
    assert.deepEqual(c, [
      [2, 3, 'malformed_csv', 'extra,fields,here'],
      [3, 4, 'csv_unclosed_quote', '"unclosed,quote'],
    ]);
    assert.deepEqual(await out.rows('c.jsonl'), [
      { instruction: 'What is KYC?', input: '', output: 'Know your customer.' },
      { instruction: 'What is AML?', input: '', output: 'Anti-money laundering.' },
    ]);

    const seen = new Set(q.map((e) => e.reason));
    for (const reason of QUARANTINE_REASONS) assert.ok(seen.has(reason), `no row was quarantined for ${reason}`);

    // Conservation, per source and in total, as printed.
    for (const src of out.result.sources) assert.equal(src.rows_in, src.rows_out + src.rows_quarantined, src.name);
    assert.equal(out.result.rows_in, alpaca.length + 1 + sharegpt.length + 4);
    assert.equal(out.result.rows_in, out.result.rows_out + out.result.rows_quarantined);
    assert.equal(q.length, out.result.rows_quarantined);
    assert.ok(out.logs.includes(`rows_in ${out.result.rows_in} = rows_out ${out.result.rows_out} + rows_quarantined ${out.result.rows_quarantined} ✓`));
  } finally {
    await cleanup(root);
  }
});

test('duplicates are exact: whitespace and placeholder differences after filling decide', async () => {
  const root = await tempRepo({
    'datasets/a/dataset.yaml': alpacaYaml('a.jsonl'),
    'datasets/a/a.jsonl': jsonl([
      { instruction: 'Who?', output: 'I am {{name}}.' },
      { instruction: 'Who?', output: 'I am 小聚.' },
      { instruction: 'Who?', output: 'I am 小聚. ' },
      { instruction: 'Who?', input: '', output: 'I am {{ name }}.' },
    ]),
  });
  try {
    const out = await convert(root, await configFor(root, ['a']));
    const q = await out.quarantine();
    assert.deepEqual(q.map((e) => [e.record, e.reason]), [
      [2, 'duplicate'],
      [4, 'duplicate'],
    ]);
    assert.equal((await out.rows('a.jsonl')).length, 2);
  } finally {
    await cleanup(root);
  }
});

test('the cutoff check uses the conservative (upper) estimate: CJK counts 1.5, other text 1 per 3 bytes, plus template overhead', async () => {
  // 600 Han characters: upper = 900 + 1 (3 bytes of "Why" / 3) + 2 messages * 8 + 16 = 933 tokens.
  const han = '金'.repeat(600);
  const root = await tempRepo({ 'datasets/a/dataset.yaml': alpacaYaml('a.jsonl'), 'datasets/a/a.jsonl': jsonl([{ instruction: 'Why', output: han }, good(1)]) });
  try {
    const under = await convert(root, await configFor(root, ['a'], { cutoffLen: 933 }));
    assert.equal(under.result.rows_out, 2);
    await cleanup(under.outDir);
    const over = await convert(root, await configFor(root, ['a'], { cutoffLen: 932 }));
    assert.equal(over.result.rows_out, 1);
    assert.deepEqual((await over.quarantine()).map((e) => [e.record, e.reason, e.detail]), [[1, 'too_long', 'about 933 tokens (upper estimate) > cutoff_len 932']]);
  } finally {
    await cleanup(root);
  }
});

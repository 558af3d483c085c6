import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
// check()'s synth-time row rules (core does not export them): they and the converter must agree.
import { rowFieldIssues } from '../../core/src/rules/rows.ts';
import { cleanup, configFor, convert, tempRepo } from './helpers.ts';

/** Lines check() warns about, and lines the converter quarantines as broken, for one file. */
async function both(descriptor: string, file: string, content: Buffer, columns?: Record<string, string>): Promise<{ check: number[]; converter: number[] }> {
  const parsed: Record<string, unknown> = Object.fromEntries(descriptor.split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]));
  if (columns) parsed['columns'] = columns;
  const issues = rowFieldIssues('s', { name: 's', digest: 'd', descriptor: { ...parsed, files: [file] }, files: [{ path: file, sha256: '0', size: content.length, gzipBase64: gzipSync(content).toString('base64') }] }, 'at');
  const yamlColumns = columns ? `columns: { ${Object.entries(columns).map(([k, v]) => `${k}: ${v}`).join(', ')} }\n` : '';
  const root = await tempRepo({ 'datasets/s/dataset.yaml': `${descriptor}${yamlColumns}files: [${file}]\nlicense: MIT\n`, [`datasets/s/${file}`]: content });
  try {
    const out = await convert(root, await configFor(root, ['s']));
    const broken = (await out.quarantine()).filter((q) => !['duplicate', 'too_long', 'max_samples'].includes(q.reason));
    return { check: issues.map((i) => Number(/:(\d+)$/.exec(String(i.value))![1])), converter: broken.map((q) => q.line) };
  } finally {
    await cleanup(root);
  }
}

test('a ShareGPT turn without a usable role is reported by check() and quarantined by the converter', async () => {
  const rows = [
    { conversations: [{ from: 'human', value: 'ok' }, { from: 'gpt', value: 'fine' }] },
    { conversations: [{ value: 'no from' }, { from: 'gpt', value: 'x' }] },
    { conversations: [{ from: 'human', value: 'x' }, { from: 3, value: 'number' }] },
    { conversations: [{ from: 'human', value: 'x' }, { from: 'constructor', value: 'inherited' }] },
    { conversations: [{ from: 'human', value: 'x' }, { from: '__proto__', value: 'inherited' }] },
    { messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: 7 }] },
    { conversations: [{ from: 'human', value: 'x' }, { from: 'human', value: 'twice' }] },
    { conversations: [{ from: 'human', value: 'x' }, { from: 'gpt', value: 'y' }], system: 5 },
  ];
  const result = await both('format: sharegpt\n', 'c.jsonl', Buffer.from(rows.map((r) => JSON.stringify(r)).join('\n') + '\n'));
  assert.deepEqual(result.check, [2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual(result.converter, result.check);
});

test('alpaca optional fields of the wrong type, and bytes that are not UTF-8, are reported by both', async () => {
  const content = Buffer.concat([
    Buffer.from('{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": "d", "input": 5}\n{"instruction": "e", "output": "f", "history": [["g"]]}\n'),
    Buffer.from('{"instruction": "caf'),
    Buffer.from([0xe9]),
    Buffer.from('", "output": "h"}\n{"instruction": "U+FFFD \uFFFD is text", "output": "i"}\n'),
  ]);
  const result = await both('format: alpaca\n', 'a.jsonl', content);
  assert.deepEqual(result.check, [2, 3, 4]);
  assert.deepEqual(result.converter, result.check);
});

test('check() reads a JSON array with a stray closing brace in finite time, cut where the converter cuts it', async () => {
  // Before: check() looped on the `}` and ran out of memory at synth time.
  const result = await both('format: alpaca\n', 'a.json', Buffer.from('[{"instruction": "a", "output": "b"}}, {"instruction": "c", "output": "d"}]'));
  assert.deepEqual(result.check, [1]);
  assert.deepEqual(result.converter, result.check);
});

test('CSV and TSV: check() delimits records as the converter does, stray quotes, bad closing quotes and bad bytes included', async () => {
  for (const [format, d] of [
    ['csv', ','],
    ['tsv', '\t'],
  ] as const) {
    const lines = [
      `q${d}a`,
      `ok 1${d}fine`,
      `"stray${d}quote`,
      `ok 2${d}fine`,
      `"closed"x${d}bad`,
      `ok 3${d}"two`,
      `lines"`,
      `too${d}many${d}fields`,
      `empty${d}`,
      `x${d}"opens`,
      `ok 4${d}shuts"after`,
      ...Array.from({ length: 70 }, (_, i) => (i === 0 ? `y${d}"never closed` : `pad ${i}${d}row ${i}`)),
    ];
    const content = Buffer.concat([Buffer.from(`${lines.join('\n')}\n`), Buffer.from(`caf`), Buffer.from([0xe9]), Buffer.from(`${d}latin-1\n`)]);
    const result = await both(`format: ${format}\n`, `c.${format}`, content, { instruction: 'q', output: 'a' });
    // 3: a stray quote that line 5's quote (followed by text) cannot close; 5: a bad closing quote;
    // 8: field count; 9: empty column; 10: likewise ended on line 11; 12: not closed within the
    // line cap (the 69 rows after it are rows); 82: not UTF-8.
    assert.deepEqual(result.check, [3, 5, 8, 9, 10, 12, 82], format);
    assert.deepEqual(result.converter, result.check, format);
  }
});

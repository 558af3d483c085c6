import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { ConvertError, runConvert, type ConvertConfig } from '../src/index.ts';
import { cleanup, tempRepo } from './helpers.ts';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';

const sha = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');

/** Lines an Alpaca JSONL file might contain in the wild: good rows, near misses and junk. */
const alpacaLine = fc.oneof(
  fc.record({ instruction: fc.string({ minLength: 1 }), output: fc.string({ minLength: 1 }) }).map((r) => JSON.stringify(r)),
  fc.record({ instruction: fc.string({ unit: 'binary' }), input: fc.oneof(fc.string(), fc.integer(), fc.constant(null)), output: fc.string({ unit: 'binary' }) }, { requiredKeys: [] }).map((r) => JSON.stringify(r)),
  fc.record({ instruction: fc.string({ minLength: 1 }), output: fc.string({ minLength: 1 }), history: fc.anything() }).map((r) => JSON.stringify(r)),
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.string().map((s) => s.replace(/[\r\n]/g, ' ')),
  fc.constant('{"instruction": "cut off", "output": "'),
  fc.constant('{"instruction": "{{name}}", "output": "{{author}}"}'),
  fc.constant(''),
);

/** ShareGPT rows with arbitrary role sequences, contents and shapes. */
const message = fc.oneof(
  fc.record({ from: fc.constantFrom('human', 'gpt', 'system', 'observation', 'function_call', 'bot', ''), value: fc.oneof(fc.string(), fc.integer()) }, { requiredKeys: [] }),
  fc.record({ role: fc.constantFrom('user', 'assistant', 'system', 'tool', 'robot'), content: fc.oneof(fc.string(), fc.array(fc.string())) }, { requiredKeys: [] }),
  fc.jsonValue(),
);
const sharegptElement = fc.oneof(
  fc.record({ conversations: fc.array(message, { maxLength: 6 }), system: fc.option(fc.string()) }, { requiredKeys: [] }).map((r) => JSON.stringify(r)),
  fc.record({ messages: fc.array(message, { maxLength: 6 }) }).map((r) => JSON.stringify(r)),
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.constant('{"conversations": [ }'),
  fc.constant('{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}'),
);

interface Outcome {
  rowsIn: number;
  rowsOut: number;
  quarantined: { record: number; raw?: string; reason: string }[];
  /** Codes of a reported failure (a ConvertError: issues, not a crash). */
  failed?: string[];
}

async function run(root: string, format: 'alpaca' | 'sharegpt', file: string, content: string): Promise<Outcome> {
  const dir = join(root, 'datasets', 'f');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, file), content);
  const config: ConvertConfig = {
    pipeline: 'fuzz',
    sources: [{ name: 'f', descriptor: { format, license: 'MIT', files: [file] }, files: [{ path: file, sha256: sha(content), size: Buffer.byteLength(content) }] }],
    templateVars: { name: 'N', author: 'A' },
    seed: 3,
    split: { validation: 0.2, test: 0.2 },
    cutoffLen: 256,
    maxSamples: 5,
  };
  const outDir = join(root, 'out');
  await rm(outDir, { recursive: true, force: true });
  try {
    const result = await runConvert(config, { inputsDir: join(root, 'datasets'), outDir });
    const lines = (await readFile(join(outDir, 'quarantine.jsonl'), 'utf8')).split('\n').filter(Boolean);
    return { rowsIn: result.rows_in, rowsOut: result.rows_out, quarantined: lines.map((l) => JSON.parse(l)) };
  } catch (e) {
    if (e instanceof ConvertError) return { rowsIn: 0, rowsOut: 0, quarantined: [], failed: e.issues.map((i) => i.code) };
    throw e;
  }
}

const first = JSON.stringify({ instruction: 'Anchor row?', output: 'Always valid.' });

test('fuzz: malformed Alpaca JSONL never crashes the converter and no row is lost', async () => {
  const root = await tempRepo({});
  try {
    await fc.assert(
      fc.asyncProperty(fc.array(alpacaLine, { maxLength: 40 }), async (lines) => {
        const all = [first, ...lines];
        const content = all.join('\n') + '\n';
        const nonBlank = all.filter((l) => l.trim() !== '');
        const outcome = await run(root, 'alpaca', 'f.jsonl', content);
        // Lines are independent: the only acceptable failure is "every row was bad", reported as such.
        if (outcome.failed) {
          assert.deepEqual(outcome.failed, ['convert.split-empty']);
          return;
        }
        assert.equal(outcome.rowsIn, nonBlank.length);
        assert.equal(outcome.rowsOut + outcome.quarantined.length, outcome.rowsIn);
        const records = outcome.quarantined.map((q) => q.record);
        assert.equal(new Set(records).size, records.length, 'a row is quarantined at most once');
        for (const q of outcome.quarantined) {
          assert.ok(q.record >= 1 && q.record <= nonBlank.length);
          if (q.reason !== 'max_samples') assert.equal(q.raw, nonBlank[q.record - 1]!.replace(/\r$/, ''));
        }
      }),
      { numRuns: 80 },
    );
  } finally {
    await cleanup(root);
  }
});

test('fuzz: arbitrary ShareGPT JSON arrays never crash the converter and no element is lost', async () => {
  const root = await tempRepo({});
  try {
    await fc.assert(
      fc.asyncProperty(fc.array(sharegptElement, { maxLength: 30 }), fc.constantFrom(',', ',\n', ' ,\n  '), async (elements, sep) => {
        const content = `[\n${[JSON.stringify({ conversations: [{ from: 'human', value: 'anchor' }, { from: 'gpt', value: 'ok' }] }), ...elements].join(sep)}\n]\n`;
        const outcome = await run(root, 'sharegpt', 'f.json', content);
        if (outcome.failed) {
          // An element with unbalanced brackets breaks the array itself: one file-level error.
          const balanced = elements.every((e) => e !== '{"conversations": [ }');
          assert.deepEqual(outcome.failed, balanced ? ['convert.split-empty'] : ['convert.file-format']);
          return;
        }
        assert.equal(outcome.rowsIn, elements.length + 1);
        assert.equal(outcome.rowsOut + outcome.quarantined.length, outcome.rowsIn);
        const records = outcome.quarantined.map((q) => q.record);
        assert.equal(new Set(records).size, records.length);
        for (const q of outcome.quarantined) {
          if (q.reason === 'max_samples') continue;
          assert.ok(q.record >= 2, 'the anchor element is valid');
          assert.equal(q.raw, elements[q.record - 2]!.trim());
        }
      }),
      { numRuns: 80 },
    );
  } finally {
    await cleanup(root);
  }
});

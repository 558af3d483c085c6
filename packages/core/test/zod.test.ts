import { test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { ISSUE_CODE, issuePath, zodIssues, zodParse, type Issue } from '../src/index.ts';

const Settings = z.strictObject({
  name: z.string().min(1),
  mode: z.enum(['fast', 'careful']),
  gpus: z.number().int().min(1).max(8),
  files: z.array(z.strictObject({ path: z.string(), size: z.number().int().nonnegative().optional() })).min(1, { error: 'list at least one file' }),
  tag: z.string().regex(/^v\d+$/).optional(),
});

function issues(input: unknown, extra: Partial<Parameters<typeof zodParse>[2]> = {}): Issue[] {
  const r = zodParse(Settings, input, { area: 'settings', ...extra });
  assert.ok(!r.ok);
  return r.issues;
}

const valid = { name: 'x', mode: 'fast', gpus: 2, files: [{ path: 'a' }] };

test('zodParse returns the parsed value', () => {
  const r = zodParse(Settings, valid, { area: 'settings' });
  assert.ok(r.ok);
  assert.equal(r.value.gpus, 2);
});

test('each zod issue code maps to one area.rule code, a structured message, the value and a path like a.b[0].c', () => {
  const found = issues({ name: '', mode: 'fsat', gpus: 1.5, files: [{ path: 'a', sise: 3 }], tag: 'x', extra: true });
  const byPath = new Map(found.map((i) => [i.path, i]));
  assert.deepEqual(byPath.get('name'), { path: 'name', message: 'must not be empty', value: '', code: 'settings.range' });
  assert.deepEqual(byPath.get('mode'), { path: 'mode', message: "must be one of 'fast', 'careful'", value: 'fsat', fix: "did you mean 'fast'?", code: 'settings.choice' });
  assert.equal(byPath.get('gpus')!.code, 'settings.type');
  assert.equal(byPath.get('gpus')!.message, 'must be an integer, not a fraction (1.5)');
  assert.deepEqual(byPath.get('files[0].sise'), { path: 'files[0].sise', message: "unknown key 'sise'", value: 3, fix: "did you mean 'size'?", code: 'settings.unknown-key' });
  assert.equal(byPath.get('tag')!.code, 'settings.format');
  assert.equal(byPath.get('tag')!.message, 'must match /^v\\d+$/');
  assert.equal(byPath.get('extra')!.fix, 'remove it (allowed here: name, mode, gpus, files, tag)');
  for (const issue of found) assert.match(issue.code, ISSUE_CODE);
});

test('a missing key reads as missing; bounds read from minimum/maximum', () => {
  const found = issues({ mode: 'fast', gpus: 9, files: [] });
  assert.deepEqual(
    found.map((i) => [i.path, i.code, i.message]),
    [
      ['name', 'settings.missing', 'is required (a string)'],
      ['gpus', 'settings.range', 'must be at most 8'],
      // the author's message on a built-in check is kept
      ['files', 'settings.range', 'list at least one file'],
    ],
  );
});

test('no message is zod English text, through zodIssues on a plain safeParse too', () => {
  const parsed = Settings.safeParse({ name: 3, mode: 'x', gpus: 0, files: [] });
  assert.ok(!parsed.success);
  const found = zodIssues(parsed.error, { area: 'settings', root: { name: 3, mode: 'x', gpus: 0, files: [] } });
  const zodText = new Set(parsed.error.issues.map((i) => i.message));
  for (const issue of found) assert.ok(!zodText.has(issue.message), issue.message);
  // without zodParse the author's message on a built-in check cannot be told from zod's, so it is rebuilt
  assert.equal(found.find((i) => i.path === 'files')!.message, 'must not be empty');
});

test('custom issues keep the author message and take rule and fix from params', () => {
  const Pair = z.object({ a: z.number(), b: z.number() }).superRefine((v, ctx) => {
    if (v.a > v.b) ctx.addIssue({ code: 'custom', path: ['a'], message: 'must not exceed b', params: { rule: 'order', fix: 'swap them' } });
  });
  const parsed = Pair.safeParse({ a: 2, b: 1 });
  assert.ok(!parsed.success);
  assert.deepEqual(zodIssues(parsed.error, { area: 'pair', root: { a: 2, b: 1 } }), [{ path: 'a', message: 'must not exceed b', value: 2, fix: 'swap them', code: 'pair.order' }]);
  const plain = zodParse(z.number().refine((n) => n > 0), -1, { area: 'n' });
  assert.ok(!plain.ok);
  assert.deepEqual(plain.issues, [{ path: '(root)', message: 'is not valid', value: -1, code: 'n.invalid' }]);
});

test('pathPrefix, formatPath and fix options', () => {
  assert.equal(issues({ ...valid, gpus: 0 }, { pathPrefix: 'tunepipe.json' })[0]!.path, 'tunepipe.json gpus');
  assert.equal(zodParse(Settings, 3, { area: 'settings', pathPrefix: 'tunepipe.json' }).ok === false && issues(3, { pathPrefix: 'tunepipe.json' })[0]!.path, 'tunepipe.json');
  assert.equal(issues({ ...valid, gpus: 0 }, { formatPath: (p) => `f.yaml:3 (${p.join('/')})` })[0]!.path, 'f.yaml:3 (gpus)');
  assert.equal(issues({ ...valid, gpus: 0 }, { fix: 'see the README' })[0]!.fix, 'see the README');
  assert.equal(issues({ ...valid, mode: 'fsat' }, { fix: 'see the README' })[0]!.fix, "did you mean 'fast'?");
  assert.equal(issues({ ...valid, mode: 'fsat' }, { fix: (c) => `${c.rule}: ${c.suggestion}` })[0]!.fix, "choice: did you mean 'fast'?");
});

test('unions: a discriminator names its options, one deeper branch is followed, otherwise the accepted shapes are listed', () => {
  const Shape = z.discriminatedUnion('kind', [z.strictObject({ kind: z.literal('a'), size: z.number() }), z.strictObject({ kind: z.literal('b'), name: z.string() })]);
  const tag = zodParse(Shape, { kind: 'other' }, { area: 'shape' });
  assert.ok(!tag.ok);
  assert.deepEqual(tag.issues, [{ path: 'kind', message: "must be one of 'a', 'b'", value: 'other', code: 'shape.choice' }]);
  const key = zodParse(Shape, { kind: 'b', nmae: 'x' }, { area: 'shape' });
  assert.ok(!key.ok);
  assert.deepEqual(key.issues.map((i) => [i.path, i.code, i.fix]), [['name', 'shape.missing', undefined], ['nmae', 'shape.unknown-key', "did you mean 'name'?"]]);

  const Entry = z.array(z.union([z.string(), z.strictObject({ path: z.string(), sha256: z.string().length(64) })]));
  const deeper = zodParse(Entry, [{ path: 'x', sha256: 'ab' }], { area: 'file' });
  assert.ok(!deeper.ok);
  assert.deepEqual(deeper.issues.map((i) => [i.path, i.code, i.message]), [['[0].sha256', 'file.range', 'must be exactly 64 characters long']]);
  const none = zodParse(Entry, [3], { area: 'file' });
  assert.ok(!none.ok);
  assert.deepEqual(none.issues.map((i) => [i.path, i.code, i.message]), [['[0]', 'file.type', 'must be a string or an object, not a whole number']]);
});

test('record keys and nested paths', () => {
  const Vars = z.record(z.string().regex(/^[a-z]+$/), z.string());
  const r = zodParse(Vars, { Bad: 'x', ok: 3 }, { area: 'vars' });
  assert.ok(!r.ok);
  assert.deepEqual(r.issues.map((i) => [i.path, i.code]), [['Bad', 'vars.key'], ['ok', 'vars.type']]);
});

test('issuePath writes a.b[0].c and quotes keys that would read as path syntax', () => {
  assert.equal(issuePath(['stages', 0, 'args', 'lora_rank']), 'stages[0].args.lora_rank');
  assert.equal(issuePath(['metrics', 'predict_bleu-4']), 'metrics.predict_bleu-4');
  assert.equal(issuePath(['a.b', 'c']), '["a.b"].c');
  assert.equal(issuePath([]), '');
});

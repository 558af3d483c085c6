// The README's pipeline examples, exactly as printed: each ```ts block that defines a pipeline is
// type-checked against the repo's packages, loaded, and checked with the repo's datasets and the
// Secrets infra/cluster creates, as `tunepipe plan` would.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import { check, compile, formatIssues, isError, type Pipeline } from '@tunepipe/core';
import { loadCompileContext } from '../packages/workspace/src/context.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const readme = readFileSync(join(root, 'README.md'), 'utf8');

/** Fenced ```ts blocks that define a pipeline, with the README line each starts on. */
function pipelineBlocks(markdown: string): { line: number; code: string }[] {
  const blocks: { line: number; code: string }[] = [];
  const fence = /^```ts\n([\s\S]*?)^```$/gm;
  for (let m = fence.exec(markdown); m; m = fence.exec(markdown)) {
    if (!m[1]!.includes('definePipeline(')) continue;
    blocks.push({ line: markdown.slice(0, m.index).split('\n').length + 1, code: m[1]! });
  }
  return blocks;
}

/** Problems TypeScript finds in the file, with the compiler options every workspace package uses. */
function typeErrors(file: string): string[] {
  const base = ts.readConfigFile(join(root, 'tsconfig.base.json'), (p) => ts.sys.readFile(p));
  const { options } = ts.parseJsonConfigFileContent(base.config, ts.sys, root);
  const program = ts.createProgram([file], { ...options, noEmit: true });
  const source = program.getSourceFile(file)!;
  // The example's own diagnostics only: the packages it imports are type-checked by `npm test` already.
  const diagnostics = [...program.getOptionsDiagnostics(), ...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)];
  return diagnostics.map((d) => {
    const where = d.file && d.start !== undefined ? `${d.file.fileName}:${d.file.getLineAndCharacterOfPosition(d.start).line + 1}: ` : '';
    return `${where}${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
  });
}

const blocks = pipelineBlocks(readme);

test('the README prints at least one pipeline', () => {
  assert.ok(blocks.length >= 1);
});

// Inside the repo (gitignored) so that `@tunepipe/core` resolves as it does for pipelines/<name>.
const scratch = join(root, '.tunepipe', `readme-test-${process.pid}`);

for (const block of blocks) {
  test(`README.md:${block.line}: the pipeline type-checks, loads and passes check() as printed`, async (t) => {
    mkdirSync(scratch, { recursive: true });
    t.after(() => rmSync(scratch, { recursive: true, force: true }));
    const file = join(scratch, `readme-${block.line}.ts`);
    writeFileSync(file, block.code);

    assert.deepEqual(typeErrors(file), [], 'TypeScript errors');
    const pipeline = ((await import(pathToFileURL(file).href)) as { default: Pipeline }).default;
    const context = await loadCompileContext(root, pipeline);
    const issues = check(pipeline, context);
    assert.deepEqual(issues.filter(isError), [], formatIssues(issues));
    // Warnings about what the example writes too (a Secret infra/cluster does not create,
    // calibration settings quantize does not use), but not the branch it keeps on purpose (the
    // README says so next to it) nor the planner's remarks on GPU fit, which the example shares
    // with pipelines/llama3-fintech.
    const remarks = issues.filter((i) => !isError(i) && i.code !== 'model.revision' && !i.code.startsWith('planner.'));
    assert.deepEqual(remarks, [], formatIssues(issues));
    assert.ok(compile(pipeline, context).stages.length > 0);
  });
}

// The argument tables check() judges pipelines by (packages/core/src/reference/*.gen.ts) must be
// exactly what the generator reads from the pinned packages today: regenerate them into a temporary
// folder with the real-tools venv and compare byte for byte. A difference means the pins moved
// without `npm run gen:reference`, or someone edited a generated file by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VLLM_SERVE_FLAGS } from '@tunepipe/core';
import { runPython } from '../../scripts/real/python.mjs';
import { repoRoot, venvPython } from './support/python.ts';

const GENERATED = ['llamafactory-args.gen.ts', 'vllm-serve-flags.gen.ts'];

test('the committed argument tables equal what scripts/gen-reference.mjs reads from the pinned packages', () => {
  const out = mkdtempSync(join(tmpdir(), 'tunepipe-reference-'));
  try {
    const r = spawnSync(process.execPath, [join(repoRoot, 'scripts/gen-reference.mjs'), '--out', out, '--python', venvPython()], { cwd: repoRoot, encoding: 'utf8' });
    assert.equal(r.status, 0, `gen-reference failed:\n${r.stderr}`);
    for (const file of GENERATED) {
      const committed = readFileSync(join(repoRoot, 'packages/core/src/reference', file), 'utf8');
      const fresh = readFileSync(join(out, file), 'utf8');
      if (committed !== fresh) {
        const a = committed.split('\n');
        const b = fresh.split('\n');
        const at = a.findIndex((line, i) => line !== b[i]);
        assert.fail(`${file} differs from a fresh generation (first at line ${at + 1}: committed ${JSON.stringify(a[at])}, generated ${JSON.stringify(b[at])}); run npm run gen:reference`);
      }
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test("the vLLM table does not depend on the platform it was read on (CPU here, CUDA in the image)", () => {
  // introspect_vllm.py builds the parser on vLLM's CPU platform because the CUDA one cannot load
  // without a GPU driver. A CUDA-typed stand-in must give the same flags, types, choices, defaults.
  const r = runPython(venvPython(), [join(repoRoot, 'scripts/real/introspect_vllm.py'), 'flags'], { env: { TUNEPIPE_VLLM_PLATFORM: 'cuda-typed' } });
  assert.deepEqual(JSON.parse(r.stdout).flags, VLLM_SERVE_FLAGS);
});

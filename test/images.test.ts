// The Dockerfile reader behind the real-tools tier's image tests (scripts/real/images.mjs), and
// what the images' Dockerfiles must say for their install steps to work; the steps themselves run
// in `npm run test:real` (test/real/images/).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dockerignored, readDockerfile, splitShell } from '../scripts/real/images.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));

function envOf(dockerfile: string): Record<string, string> {
  const { stages } = readDockerfile(readFileSync(join(root, dockerfile), 'utf8'));
  const env: Record<string, string> = {};
  for (const step of stages.flatMap((s) => s.steps) as { keyword: string; values?: [string, string][] }[]) {
    if (step.keyword === 'ENV') for (const [k, v] of step.values ?? []) env[k] = v;
  }
  return env;
}

test("gptq image: TORCH_CUDA_ARCH_LIST is what gptqmodel's setup script can parse", () => {
  // gptqmodel 2.x splits the list on whitespace and parses every entry as a number ("8.0+PTX" allowed).
  const archList = envOf('images/gptq/Dockerfile')['TORCH_CUDA_ARCH_LIST'];
  assert.ok(archList, 'the GPTQ image names the GPU generations to compile for');
  for (const entry of archList.split(/\s+/)) {
    assert.ok(Number.isFinite(Number(entry.split('+')[0])), `"${entry}" is not a number: separate the entries with spaces, not semicolons`);
  }
  // The generations of the GPU catalogue: T4 (7.5), A100 (8.0), A10G (8.6), L4/L40S (8.9), H100/H200 (9.0).
  assert.deepEqual(archList.split(/\s+/), ['7.5', '8.0', '8.6', '8.9', '9.0']);
});

test('qlora image: its install step is a pip install of the pin and a check the tier can run, with the floor LLaMA-Factory checks', () => {
  const { stages } = readDockerfile(readFileSync(join(root, 'images/qlora/Dockerfile'), 'utf8'));
  const steps = stages[0]!.steps as { keyword: string; values?: [string, string][]; command?: string }[];
  const vars = Object.fromEntries(steps.flatMap((s) => (s.keyword === 'ARG' ? s.values ?? [] : [])));
  const pins = JSON.parse(readFileSync(join(root, 'pins.json'), 'utf8')) as { python: Record<string, string> };
  const install = steps.filter((s) => s.keyword === 'RUN').map((s) => splitShell(s.command!, vars)).find((parts) => parts[0]?.argv[0] === 'pip')!;
  // Plain commands only (no subshell, pipe or ||): the real-tools tier carries out both.
  assert.deepEqual(install.map((p) => [p.argv[0], p.compound]), [['pip', false], ['python', false]]);
  assert.deepEqual(install[0]!.argv, ['pip', 'install', `bitsandbytes==${pins.python['bitsandbytes']}`]);
  // LLaMA-Factory 0.9.4 (model/model_utils/quantization.py) requires bitsandbytes>=0.43.0 for a
  // 4-bit model under ZeRO-3 or FSDP, the layouts the 70B QLoRA example plans; the check runs it.
  const floor = /check_version\('bitsandbytes>=([\d.]+)', mandatory=True\)/.exec(install[1]!.argv[2]!)?.[1];
  assert.equal(floor, '0.43.0');
  const [major, minor] = pins.python['bitsandbytes']!.split('.').map(Number);
  assert.ok(major! > 0 || minor! >= 43, `bitsandbytes ${pins.python['bitsandbytes']} is below LLaMA-Factory's floor ${floor}`);
});

test('Dockerfile reader: ARG defaults reach FROM and RUN, continuation lines join, stages keep their names', () => {
  const { stages } = readDockerfile(
    'ARG BASE=node:20.20.2-bookworm-slim\nFROM ${BASE} AS build\nARG V=1.2.3\nENV A="x y" B=/tmp/b\nRUN pip install p==${V} \\\n && echo done\nFROM build\nCMD ["tool", "--help"]\n',
  );
  assert.deepEqual(stages.map((s) => [s.image, s.name]), [['node:20.20.2-bookworm-slim', 'build'], ['build', undefined]]);
  const steps = stages[0]!.steps as { keyword: string; values?: string[][]; command?: string }[];
  assert.deepEqual(steps.find((s) => s.keyword === 'ENV')!.values, [['A', 'x y'], ['B', '/tmp/b']]);
  const run = splitShell(steps.find((s) => s.keyword === 'RUN')!.command!, { V: '1.2.3' });
  assert.deepEqual(run.map((p) => p.argv), [['pip', 'install', 'p==1.2.3'], ['echo', 'done']]);
});

test('shell splitting: quotes, redirections, and compound commands that are reported instead of run', () => {
  const parts = splitShell(`printf '#!/bin/sh\\nexec node /x "$@"\\n' > /usr/local/bin/t && chmod 0755 /usr/local/bin/t; python -c "import a; print('ok')"`, {});
  assert.deepEqual(parts[0], { text: `printf '#!/bin/sh\\nexec node /x "$@"\\n' > /usr/local/bin/t`, argv: ['printf', '#!/bin/sh\\nexec node /x "$@"\\n'], stdoutTo: '/usr/local/bin/t', compound: false });
  assert.deepEqual(parts[1]!.argv, ['chmod', '0755', '/usr/local/bin/t']);
  assert.deepEqual(parts[2]!.argv, ['python', '-c', "import a; print('ok')"]);
  const compound = splitShell('(getent group 1000 >/dev/null || groupadd --gid 1000 app) && useradd app', {});
  assert.deepEqual(compound.map((p) => p.compound), [true, false]);
});

test('.dockerignore matching: globs, ** and parent folders', () => {
  const patterns = ['**/node_modules', '.git', '**/dist', 'datasets', '*.log', '!keep.log'];
  assert.equal(dockerignored('packages/cli/node_modules/x/index.js', patterns), true);
  assert.equal(dockerignored('node_modules/a', patterns), true);
  assert.equal(dockerignored('pipelines/llama3-fintech/dist/job.yaml', patterns), true);
  assert.equal(dockerignored('datasets/identity/dataset.yaml', patterns), true);
  assert.equal(dockerignored('debug.log', patterns), true);
  assert.equal(dockerignored('keep.log', patterns), false);
  assert.equal(dockerignored('packages/cli/src/main.ts', patterns), false);
  assert.equal(dockerignored('packages/distance/a.ts', patterns), false);
});

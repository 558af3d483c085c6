// pins.json is the one pin set. Everything that repeats a pin must agree with it: core's generated
// PINS (its default images), the Dockerfiles' ARG defaults, and the Python lock of the real-tools
// tier. `npm run pins:apply` brings them back in line; this test says which one drifted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_IMAGES } from '@tunepipe/core';
import { DOCKERFILE_ARGS, applyDockerfileArgs, dockerfileArgs, pinAt, renderPinsGen } from '../scripts/pins.mjs';
import { PINS } from '../packages/core/src/reference/pins.gen.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const pins = JSON.parse(readFileSync(join(root, 'pins.json'), 'utf8'));
const fix = 'run `npm run pins:apply`';

test('pins.gen.ts is exactly what scripts/pins.mjs renders from pins.json', () => {
  const committed = readFileSync(join(root, 'packages/core/src/reference/pins.gen.ts'), 'utf8');
  assert.equal(committed, renderPinsGen(pins), `pins.gen.ts is stale; ${fix}`);
  const { $comment: _why, ...imageDigests } = pins.imageDigests;
  assert.deepEqual(PINS, { images: pins.images, imageDigests, python: pins.python });
});

test("core's default images are the pinned ones", () => {
  // The tag for humans, then the recorded digest when pins.json has one.
  const pinned = (image: string) => (pins.imageDigests[image] ? `${image}@${pins.imageDigests[image]}` : image);
  assert.equal(DEFAULT_IMAGES.llamafactory, pinned(pins.images.llamafactory));
  assert.equal(DEFAULT_IMAGES.vllm, pinned(pins.images.vllm));
  assert.match(DEFAULT_IMAGES.vllm, /^vllm\/vllm-openai:v[\d.]+@sha256:[0-9a-f]{64}$/);
  assert.match(DEFAULT_IMAGES.gptq, new RegExp(`:${pins.python.llamafactory.replaceAll('.', '\\.')}-`), 'the GPTQ image tag names the LLaMA-Factory it extends');
  assert.match(DEFAULT_IMAGES.qlora, new RegExp(`:${pins.python.llamafactory.replaceAll('.', '\\.')}-`), 'the QLoRA image tag names the LLaMA-Factory it extends');
});

test('the image tags and the Python pins name the same releases', () => {
  assert.equal(pins.images.llamafactory.split(':').pop(), pins.python.llamafactory, 'LLaMA-Factory image tag vs python.llamafactory');
  assert.equal(pins.images.vllm.split(':').pop(), `v${pins.python.vllm}`, 'vLLM image tag vs python.vllm');
});

for (const [file, wanted] of Object.entries(DOCKERFILE_ARGS)) {
  test(`${file}: every pinned version comes from an ARG whose default is pins.json`, () => {
    const text = readFileSync(join(root, file), 'utf8');
    const args = dockerfileArgs(text);
    for (const [name, path] of Object.entries(wanted)) {
      assert.equal(args.get(name), pinAt(pins, path), `${file}: ARG ${name} should default to pins.json ${path.join('.')}; ${fix}`);
    }
    assert.equal(applyDockerfileArgs(pins, file, text), text, `${fix} would change ${file}`);
    // A version repeated as a literal (FROM image:tag, pip install pkg==x.y.z) would not follow a
    // pin change: every FROM takes an ARG, and no pinned value appears outside its ARG line.
    for (const line of text.split('\n')) {
      if (/^\s*FROM\s/i.test(line)) assert.match(line, /^\s*FROM\s+\$\{[A-Z_]+\}/, `${file}: ${line.trim()} should use an ARG`);
      if (/^\s*(ARG|#)/.test(line)) continue;
      for (const path of Object.values(wanted)) {
        const value = pinAt(pins, path);
        const literal = path[0] === 'python' ? `==${value}` : value;
        assert.ok(!line.includes(literal), `${file}: '${line.trim()}' repeats ${literal}; use the ARG`);
      }
    }
  });
}

test('the Python lock of the real-tools tier follows pins.json', () => {
  const lock = readFileSync(join(root, 'scripts/real/requirements.lock.txt'), 'utf8');
  const locked = new Map(
    lock
      .split('\n')
      .filter((l) => /^[a-z0-9]/i.test(l))
      .map((l) => {
        const [name, version] = l.split(' ')[0]!.split('==');
        return [name!.toLowerCase(), version] as const;
      }),
  );
  for (const name of ['llamafactory', 'vllm', 'transformers', 'peft', 'accelerate', 'trl', 'datasets', 'torch']) {
    assert.equal(locked.get(name), pins.python[name], `requirements.lock.txt ${name} vs pins.json python.${name}; ${fix}`);
  }
  assert.ok(!locked.has('optimum') && !locked.has('gptqmodel'), 'the GPTQ stack stays out of the shared venv');
});

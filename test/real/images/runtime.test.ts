// The runtime image's install steps, run for real from images/runtime/Dockerfile (scripts/real/images.mjs):
// its build stage (npm ci + the CLI bundle) and deps stage (production npm ci) on the build context
// the Dockerfile's .dockerignore leaves, then the final stage assembled by its COPY --from lines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { buildImage } from '../../../scripts/real/images.mjs';

const built = buildImage('runtime');

test('runtime image: every npm step of the build and deps stages runs', async () => {
  const { report } = await built;
  const npm = report.stages.flatMap((s) => s.steps).filter((s) => s.what.startsWith('npm '));
  assert.ok(npm.length >= 3, JSON.stringify(npm));
  for (const step of npm) assert.equal(step.how, 'ran', step.what);
});

test('runtime image: the final stage runs its ENTRYPOINT with only what the Dockerfile copied into it', async () => {
  const { report } = await built;
  const final = report.stages[report.stages.length - 1]!;
  const launcher = readFileSync(join(final.root, 'usr/local/bin/tunepipe'), 'utf8');
  const script = /exec node (\S+)/.exec(launcher)?.[1];
  assert.ok(script && existsSync(join(final.root, script)), `the launcher runs ${script}, which the image has`);
  assert.deepEqual(final.entrypoint, ['tunepipe']);
  const help = spawnSync(process.execPath, [join(final.root, script!), ...(final.cmd ?? [])], { encoding: 'utf8', cwd: join(final.root, 'opt/tunepipe'), env: { ...process.env, ...final.env } });
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /convert/);
});

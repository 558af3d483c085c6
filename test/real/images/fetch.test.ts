// The fetch image's install steps, run for real from images/fetch/Dockerfile (scripts/real/images.mjs):
// a clean venv of the base image's Python, the Dockerfile's ENV, COPY and RUN pip steps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { buildImage, type ImageReport, type ImageStage } from '../../../scripts/real/images.mjs';

const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
const built = buildImage('fetch');

function stageOf(report: ImageReport): ImageStage {
  return report.stages[report.stages.length - 1]!;
}

test('fetch image: the Dockerfile pip step installs its pinned requirements into a clean venv', async () => {
  const { report } = await built;
  const stage = stageOf(report);
  const python = report.python!;
  const pipSteps = stage.steps.filter((s) => s.what.startsWith('pip install'));
  assert.ok(pipSteps.length > 0 && pipSteps.every((s) => s.how === 'ran'), JSON.stringify(stage.steps, null, 2));
  const freeze = spawnSync(python.python, ['-m', 'pip', 'freeze'], { encoding: 'utf8' }).stdout.toLowerCase().replace(/_/g, '-');
  const requirements = readFileSync(join(repoRoot, 'images/fetch/requirements.txt'), 'utf8').split('\n').filter((l) => l.trim() && !l.startsWith('#'));
  for (const pin of requirements) assert.ok(freeze.includes(`${pin.trim().toLowerCase().replace(/_/g, '-')}\n`), `${pin} is not what the venv holds:\n${freeze}`);
  const check = spawnSync(python.python, ['-m', 'pip', 'check'], { encoding: 'utf8' });
  assert.equal(check.status, 0, check.stdout + check.stderr);
});

test("fetch image: its CMD and the scripts it copies run with the image's Python and environment", async () => {
  const { report } = await built;
  const stage = stageOf(report);
  const python = report.python!;
  const env = { ...process.env, ...stage.env, PATH: `${join(python.venv, 'bin')}:${process.env['PATH']}` };
  const [program, ...args] = stage.cmd!;
  const cmd = spawnSync(join(python.venv, 'bin', program!), args, { encoding: 'utf8', env });
  assert.equal(cmd.status, 0, `CMD ${stage.cmd!.join(' ')}: ${cmd.stderr}`);
  const scripts = stage.steps.filter((s) => /^COPY .* \/usr\/local\/bin\//.test(s.what)).map((s) => s.what.split(' ').pop()!);
  assert.ok(scripts.length >= 1, 'the image ships its download scripts');
  for (const script of scripts) {
    const r = spawnSync(python.python, [join(stage.root, script), '--help'], { encoding: 'utf8', env });
    assert.equal(r.status, 0, `${script} --help: ${r.stderr}`);
    assert.match(r.stdout, /usage:/);
  }
});

test('fetch image: what could not run here is only user and group setup', async () => {
  const { report } = await built;
  const notRun = stageOf(report).steps.filter((s) => s.how === 'not run').map((s) => s.what.split(' ')[0]);
  assert.deepEqual([...new Set(notRun)].sort(), ['USER', 'groupadd', 'useradd']);
});

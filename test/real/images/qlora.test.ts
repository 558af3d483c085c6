// The QLoRA image's install steps, run for real from images/qlora/Dockerfile (scripts/real/images.mjs)
// on a layer over the tier's LLaMA-Factory venv (torch, llamafactory), with the Dockerfile's ENV:
// bitsandbytes from PyPI, then the Dockerfile's own check (LLaMA-Factory's version check and the
// kernel library for torch's CUDA). Then LLaMA-Factory itself trains a QLoRA adapter on the tier's
// tiny model in that layer (bitsandbytes' CPU backend; no GPU here), and stops at model load
// without it, as a pod on the stock image would.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage } from '../../../scripts/real/images.mjs';
import { layerAndBase } from './layers.ts';
import { pythonEnv, type PythonTools } from '../../../scripts/real/python.mjs';
import { tools } from '../support/tools.ts';

const built = buildImage('qlora');
const pins = JSON.parse(readFileSync(new URL('../../../pins.json', import.meta.url), 'utf8')) as { python: Record<string, string> };
const pin = pins.python['bitsandbytes']!;

test('qlora image: bitsandbytes installs from PyPI at the pinned version, and the Dockerfile check passes', async () => {
  const { report } = await built;
  const steps = report.stages[0]!.steps;
  const pip = steps.find((s) => s.what.startsWith('pip install bitsandbytes'))!;
  assert.equal(pip.how, 'ran', JSON.stringify(pip));
  // Only bitsandbytes: its dependencies (torch, numpy, packaging) are the base's, so the step pulls
  // no CUDA libraries of its own; the wheel carries its kernels.
  assert.deepEqual(pip.installed?.map((i) => `${i.name}==${i.version}`), [`bitsandbytes==${pin}`]);
  assert.match(pip.installed![0]!.url, new RegExp(`^https://files\\.pythonhosted\\.org/packages/.+/bitsandbytes-${pin.replaceAll('.', '\\.')}-py3-none-manylinux_[0-9_]+_x86_64\\.whl$`));
  const check = steps.find((s) => s.what.startsWith('python -c'))!;
  assert.equal(check.how, 'ran');
  // The tier's torch is 2.8.0+cu128: the wheel has the kernels for it.
  assert.match(check.detail ?? '', new RegExp(`^bitsandbytes ${pin.replaceAll('.', '\\.')} ok, libbitsandbytes_cuda\\d+\\.so$`));
});

test("qlora image: its pip step adds bitsandbytes and replaces nothing LLaMA-Factory was installed with", async () => {
  const { report } = await built;
  const { layer, base } = layerAndBase(report);
  assert.ok(!base.has('bitsandbytes'), "the stand-in base has no bitsandbytes, as LLaMA-Factory's image has none");
  assert.deepEqual([...layer.keys()], ['bitsandbytes']);
  assert.equal(layer.get('bitsandbytes'), pin);
});

test('qlora image: what could not run is only user and group setup', async () => {
  const { report } = await built;
  const notRun = report.stages[0]!.steps.filter((s) => s.how === 'not run').map((s) => s.what.split(' ')[0]);
  assert.deepEqual([...new Set(notRun)].sort(), ['(getent', 'USER']);
});

/** `llamafactory-cli train <yaml>` with the given interpreter (the layer's venv has no console scripts of the base). */
function train(python: string, yaml: string): { status: number | null; output: string; seconds: number } {
  const started = Date.now();
  const r = spawnSync(python, ['-c', 'import sys; from llamafactory.cli import main; sys.argv = ["llamafactory-cli", "train", sys.argv[1]]; main()', yaml], {
    encoding: 'utf8',
    env: { ...process.env, ...pythonEnv(), OMP_NUM_THREADS: '1', NO_COLOR: '1' },
    timeout: 10 * 60 * 1000,
  });
  return { status: r.status, output: `${r.stdout}${r.stderr}`, seconds: (Date.now() - started) / 1000 };
}

test('qlora image: LLaMA-Factory trains a 4-bit (QLoRA) adapter in it, and stops at model load without it', async () => {
  const { report } = await built;
  const tiny = tools<{ dir: string }>('tinyModel');
  const stock = tools<PythonTools>('python');
  const dir = mkdtempSync(join(tmpdir(), 'tunepipe-qlora-'));
  try {
    mkdirSync(join(dir, 'data'));
    const rows = Array.from({ length: 16 }, (_, i) => ({ instruction: `What is ${i} plus ${i}?`, input: '', output: `${i} plus ${i} is ${2 * i}.` }));
    writeFileSync(join(dir, 'data', 'sums.json'), JSON.stringify(rows));
    writeFileSync(join(dir, 'data', 'dataset_info.json'), JSON.stringify({ sums: { file_name: 'sums.json' } }));
    const config = {
      stage: 'sft', do_train: true, model_name_or_path: tiny.dir, template: 'llama3',
      finetuning_type: 'lora', lora_target: 'all', quantization_bit: 4,
      dataset_dir: join(dir, 'data'), dataset: 'sums', cutoff_len: 64,
      output_dir: join(dir, 'out'), per_device_train_batch_size: 2, max_steps: 2, logging_steps: 1,
      save_strategy: 'no', report_to: 'none', seed: 42,
    };
    // JSON is YAML: LLaMA-Factory reads the file by its .yaml name.
    writeFileSync(join(dir, 'sft.yaml'), JSON.stringify(config, null, 2));

    const qlora = train(report.python!.python, join(dir, 'sft.yaml'));
    assert.equal(qlora.status, 0, qlora.output.slice(-4000));
    assert.match(qlora.output, /Quantizing model to 4 bit with bitsandbytes/);
    assert.ok(existsSync(join(dir, 'out', 'adapter_model.safetensors')), 'the adapter is written');
    // One line per logged step, then a closing line without a loss.
    const logged = readFileSync(join(dir, 'out', 'trainer_log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { current_steps: number; loss?: number });
    const losses = logged.filter((l) => l.loss !== undefined);
    assert.deepEqual(losses.map((l) => l.current_steps), [1, 2]);
    for (const { loss } of losses) assert.ok(Number.isFinite(loss), `loss ${loss}`);

    // The same config on the tier's LLaMA-Factory venv, which has what the stock image has.
    rmSync(join(dir, 'out'), { recursive: true, force: true });
    const without = train(stock.python, join(dir, 'sft.yaml'));
    assert.notEqual(without.status, 0);
    assert.match(without.output, /'bitsandbytes>=0\.39\.0' distribution was not found/);
    console.log(`QLoRA on the tiny model, 2 steps on the CPU: ${qlora.seconds.toFixed(1)} s in the qlora layer; without bitsandbytes it stops after ${without.seconds.toFixed(1)} s`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

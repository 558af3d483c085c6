// Multi-node training as tunepipe compiles it, run for real on this CPU: the pinned LLaMA-Factory
// (the tier's venv) trains the tiny model of scripts/real/make-tiny-model.py as a 2-node × 1-GPU gang.
// Each "node" is one `llamafactory-cli train <config>` process with exactly the environment the
// compiled Indexed Job gives its pod (FORCE_TORCHRUN, NNODES, NODE_RANK from the completion index,
// NPROC_PER_NODE, MASTER_ADDR, MASTER_PORT, NCCL_*), reading the YAML (and DeepSpeed JSON) of the
// stage's ConfigMap. What differs from a cluster, and why:
// - MASTER_ADDR is the index-0 pod's DNS name (<job>-0.<service>.<namespace>.svc); no pod DNS exists
//   here, so both ranks get 127.0.0.1 instead. The port stays the compiled one.
// - /artifacts (the ReadWriteMany claim every rank mounts) is a local folder both ranks share, and
//   /config (the ConfigMap) a folder per stage; the YAML's paths are rewritten to those, nothing else.
// - No CUDA: torch.distributed uses gloo (accelerate picks it when there is no GPU), DeepSpeed its
//   CPU accelerator. Nothing is added to the compiled YAML for the CPU.
// - The processes run without the stage wrapper (stage.sh): this file tests LLaMA-Factory under the
//   compiled layout; the wrapper's checkpoint sealing is the runner's tests' subject.
// Rank 1 runs under strace, so "only rank 0 writes the adapter and checkpoints" is read from the
// kernel's record of what rank 1 opened for writing, not inferred from the files.
//
// The runs are left in .tunepipe/real/llamafactory-distributed/ (per-rank logs, strace records,
// output folders); the wall time of each gang run is printed at the end.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import type { CompiledPipeline, CompiledStage, KubeObject } from '@tunepipe/core';
import type { PythonTools } from '../../../scripts/real/python.mjs';
import { deepSpeedEnv, type DeepSpeedLayer } from '../../../scripts/real/deepspeed.mjs';
import { synthPipeline } from '../../../packages/workspace/src/synth.ts';
import { tools } from '../support/tools.ts';
import { tinyWorkspace } from '../support/tiny-workspace.ts';

const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const CLI = join(REPO, 'packages', 'cli', 'bin', 'tunepipe.mjs');
const PIPELINE = 'tiny-gang';
const ROOT = join(REPO, '.tunepipe', 'real', 'llamafactory-distributed');
const ARTIFACTS = join(ROOT, 'artifacts');
const STRATEGIES = ['ddp', 'zero2', 'zero3', 'zero3-offload', 'fsdp'] as const;
type Strategy = (typeof STRATEGIES)[number];
const MAX_STEPS = 30;
const SAVE_STEPS = 5;

/**
 * One sft stage per strategy, each a 2-node × 1-GPU gang over the same converted data. Per rank 2
 * rows a step, so 4 rows a step over the gang; MAX_STEPS caps the run at a few seconds of training.
 */
const FIXTURE = `import { definePipeline } from '@tunepipe/core';

const CUTOFF_LEN = 128;

export default definePipeline({ name: '${PIPELINE}', description: 'A 2-node gang per training strategy, on the tiny model (test/real/llamafactory/distributed.test.ts)' }, (p) => {
  const base = p.baseModel({ path: 'models/tiny-llama3', template: 'llama3' });
  const data = p.convert({ sources: ['identity'], templateVars: { name: '小聚', author: 'Aron' }, cutoffLen: CUTOFF_LEN });
  for (const strategy of ${JSON.stringify(STRATEGIES)} as const) {
    p.sft({
      name: \`sft-\${strategy}\`,
      model: base,
      train: data.train,
      resources: { nodes: 2, gpusPerNode: 1 },
      strategy,
      args: {
        cutoff_len: CUTOFF_LEN,
        learning_rate: 1e-2,
        lr_scheduler_type: 'constant',
        per_device_train_batch_size: 2,
        gradient_accumulation_steps: 1,
        logging_steps: 1,
        save_steps: ${SAVE_STEPS},
        lora_rank: 8,
        lora_alpha: 16,
        lora_target: 'all',
        report_to: 'none',
        seed: 42,
        disable_gradient_checkpointing: true,
      },
      extraArgs: { max_steps: ${MAX_STEPS} },
    });
  }
});
`;

let python: PythonTools;
let compiled: CompiledPipeline;
let baseEnv: Record<string, string>;
const timings: { run: string; seconds: number; outcome: string }[] = [];

before(async () => {
  ({ python, env: baseEnv } = tinyWorkspace(ROOT, PIPELINE, FIXTURE));
  ({ compiled } = await synthPipeline(ROOT, PIPELINE));
  // The inputs every gang reads: the model's upload and the converted data, by the local runner.
  const started = Date.now();
  const run = await collect(spawn(process.execPath, [CLI, 'run', PIPELINE, '--target', 'local', '--artifacts', 'artifacts', '--only', 'fetch-model,convert'], { cwd: ROOT, env: baseEnv, stdio: ['ignore', 'pipe', 'pipe'] }));
  writeFileSync(join(ROOT, 'inputs.log'), run.output);
  assert.equal(run.code, 0, run.output);
  timings.push({ run: 'fetch-model + convert (local runner)', seconds: (Date.now() - started) / 1000, outcome: 'done' });
});

after(() => {
  const rows = timings.map((t) => `  ${t.run.padEnd(44)} ${t.outcome.padEnd(28)} ${t.seconds.toFixed(1).padStart(6)} s`);
  console.log(`\nwall times on this CPU (2 ranks, one thread each):\n${rows.join('\n')}\n`);
});

// --- the compiled gang -------------------------------------------------------------------------

function stage(strategy: Strategy): CompiledStage {
  const s = compiled.stages.find((x) => x.name === `sft-${strategy}`);
  assert.ok(s, `no stage sft-${strategy}`);
  return s;
}

/** The step that runs LLaMA-Factory, as the pod's container runs it. */
function trainStep(s: CompiledStage) {
  const step = s.run.steps.find((x) => x.argv.includes('llamafactory-cli'));
  assert.ok(step, `${s.name} runs no llamafactory-cli`);
  return step;
}

const COMPLETION_INDEX = "metadata.annotations['batch.kubernetes.io/job-completion-index']";

/**
 * The environment the pod of completion index `rank` gets, resolved as the kubelet would: plain
 * values, and NODE_RANK from the index annotation. MASTER_ADDR is the one rewrite (see the top).
 */
function rankEnv(s: CompiledStage, rank: number): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of trainStep(s).env) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.fieldRef?.fieldPath === COMPLETION_INDEX) env[e.name] = String(rank);
    else assert.fail(`${s.name}: ${e.name} comes from ${JSON.stringify(e.valueFrom)}, which this test cannot resolve`);
  }
  const master = env['MASTER_ADDR'];
  assert.ok(master?.startsWith(`${s.resourceName}-0.${s.resourceName}.`), `MASTER_ADDR is the index-0 pod's DNS name: ${master}`);
  env['MASTER_ADDR'] = '127.0.0.1';
  return env;
}

/** A pod path of the stage, on this machine: the shared artifacts folder, or the stage's config folder. */
function local(s: CompiledStage, podPath: string): string {
  if (podPath.startsWith('/artifacts/')) return join(ARTIFACTS, podPath.slice('/artifacts/'.length));
  if (podPath.startsWith('/config/')) return join(ROOT, 'config', s.name, podPath.slice('/config/'.length));
  return podPath;
}

/** Writes the stage's ConfigMap files (YAML paths mapped by `local`) and returns the YAML's local path. */
function writeConfig(s: CompiledStage): { yaml: string; outputDir: string; config: Record<string, unknown> } {
  const argv = trainStep(s).argv;
  const configFile = argv[argv.indexOf('train') + 1]!;
  for (const f of s.run.files) {
    if (!f.path.startsWith('/config/') || f.text === undefined) continue;
    mkdirSync(dirname(local(s, f.path)), { recursive: true });
    let text = f.text;
    if (f.path === configFile) {
      const doc = parse(f.text) as Record<string, unknown>;
      for (const [k, v] of Object.entries(doc)) if (typeof v === 'string' && v.startsWith('/')) doc[k] = local(s, v);
      text = stringify(doc);
    }
    writeFileSync(local(s, f.path), text);
  }
  const config = parse(readFileSync(local(s, configFile), 'utf8')) as Record<string, unknown>;
  return { yaml: local(s, configFile), outputDir: String(config['output_dir']), config };
}

// --- running a gang ----------------------------------------------------------------------------

interface RankRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly log: string;
}

interface GangRun {
  readonly ranks: readonly RankRun[];
  readonly seconds: number;
  /** The checkpoint that was whole when the watcher killed every process of both ranks. */
  readonly killedAfter?: number;
  /** What rank 1 did to files, from strace. */
  readonly rank1: FileAccess;
}

function collect(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }> {
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  return new Promise((done) => child.on('close', (code, signal) => done({ code, signal, output })));
}

/** Every process below `pid` (torchrun and its worker start their own children). */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(d)]);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

/** Files of a whole checkpoint of this gang (2 ranks): the state, the weights, every rank's RNG state, the optimizer. */
function checkpointWhole(outputDir: string, step: number, strategy: Strategy): boolean {
  const dir = join(outputDir, `checkpoint-${step}`);
  const has = (f: string) => existsSync(join(dir, f)) && statSync(join(dir, f)).size > 0;
  const optimizer = strategy.startsWith('zero') ? has('latest') : has('optimizer.pt');
  if (!(has('adapter_model.safetensors') && has('scheduler.pt') && has('rng_state_0.pth') && has('rng_state_1.pth') && optimizer)) return false;
  try {
    if ((JSON.parse(readFileSync(join(dir, 'trainer_state.json'), 'utf8')) as { global_step?: number }).global_step !== step) return false;
  } catch {
    return false;
  }
  // Files present are not files finished: rank 1 may still be writing its RNG state or partition.
  // Like the stage wrapper's sealing, a checkpoint is whole once training logged a later step:
  // that step's collectives wait for every rank, so every rank's save has returned.
  return loggedSteps(outputDir) > step;
}

function loggedSteps(outputDir: string): number {
  try {
    const lines = readFileSync(join(outputDir, 'trainer_log.jsonl'), 'utf8').trim().split('\n');
    return (JSON.parse(lines.at(-1)!) as { current_steps?: number }).current_steps ?? 0;
  } catch {
    return 0;
  }
}

function checkpoints(outputDir: string): number[] {
  if (!existsSync(outputDir)) return [];
  return readdirSync(outputDir)
    .map((n) => /^checkpoint-(\d+)$/.exec(n)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
}

/**
 * Starts both ranks of the stage's gang (rank 1 under strace) and waits for both. With
 * `killAfterCheckpoint`, every process of both ranks is SIGKILLed (a preempted gang) once a
 * checkpoint at or after that step is whole.
 */
async function runGang(label: string, strategy: Strategy, options: { killAfterCheckpoint?: number; wrapped?: boolean } = {}): Promise<GangRun> {
  const s = stage(strategy);
  const { yaml, outputDir } = writeConfig(s);
  const layerEnv = strategy.startsWith('zero') ? deepSpeedEnv(tools<DeepSpeedLayer>('deepspeed')) : {};
  const trace = join(ROOT, `${label}.rank1.strace`);
  const started = Date.now();
  const children = [0, 1].map((rank) => {
    const env = { ...baseEnv, ...layerEnv, ...rankEnv(s, rank) };
    const train = ['llamafactory-cli', 'train', yaml];
    // `wrapped`: as the pod's container runs it, under the stage wrapper (input checks, checkpoint
    // sealing and publishing, node 0 only), with the pod's paths mapped to this machine's.
    if (options.wrapped) {
      env['TUNEPIPE_INPUTS'] = (env['TUNEPIPE_INPUTS'] ?? '').split('\n').map((p) => local(s, p)).join('\n');
      env['TUNEPIPE_SEAL_SECONDS'] = '2';
    }
    const argv = options.wrapped ? ['/bin/sh', local(s, '/config/stage.sh'), s.run.mode ?? 'in-place', local(s, s.artifactPath!), '--', ...train] : train;
    const [cmd, ...args] =
      rank === 1 ? ['strace', '-f', '-qq', '-o', trace, '-e', 'trace=open,openat,creat,mkdir,mkdirat,rename,renameat,renameat2,unlink,unlinkat,rmdir', '--', ...argv] : argv;
    return spawn(cmd!, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  });
  let killedAfter: number | undefined;
  const watcher = options.killAfterCheckpoint
    ? setInterval(() => {
        if (killedAfter !== undefined) return;
        const whole = checkpoints(outputDir).filter((n) => n >= options.killAfterCheckpoint! && checkpointWhole(outputDir, n, strategy));
        if (whole.length === 0) return;
        killedAfter = whole.at(-1)!;
        for (const child of children) for (const pid of [...descendants(child.pid!), child.pid!]) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }, 20)
    : undefined;
  // A hung rendezvous must not hang the tier.
  const guard = setTimeout(() => children.forEach((c) => c.kill('SIGKILL')), 8 * 60_000);
  const results = await Promise.all(children.map(collect));
  clearTimeout(guard);
  if (watcher) clearInterval(watcher);
  const ranks = results.map((r, rank) => {
    writeFileSync(join(ROOT, `${label}.rank${rank}.log`), r.output);
    return { code: r.code, signal: r.signal, log: r.output };
  });
  const seconds = (Date.now() - started) / 1000;
  const outcome = killedAfter !== undefined ? `killed after checkpoint-${killedAfter}` : ranks.every((r) => r.code === 0) ? 'done' : `exit ${ranks.map((r) => r.code ?? r.signal).join('/')}`;
  timings.push({ run: `${label} (${strategy})`, seconds, outcome });
  return { ranks, seconds, ...(killedAfter !== undefined ? { killedAfter } : {}), rank1: fileAccess(trace, outputDir) };
}

interface FileAccess {
  /** Paths under the output folder rank 1 opened for writing, renamed, removed or created (as folders), relative. */
  readonly wrote: readonly string[];
  readonly createdDirs: readonly string[];
  /** Paths under the output folder rank 1 opened read-only. */
  readonly read: readonly string[];
}

function fileAccess(trace: string, outputDir: string): FileAccess {
  const wrote = new Set<string>();
  const createdDirs = new Set<string>();
  const read = new Set<string>();
  const prefix = `${outputDir}/`;
  for (const line of readFileSync(trace, 'utf8').split('\n')) {
    const m = /^\d+\s+(open|openat|creat|mkdir|mkdirat|rename|renameat2?|unlink|unlinkat|rmdir)\((?:AT_FDCWD, |\d+, )?"([^"]+)"(?:, ([A-Z_|]+))?/.exec(line);
    if (!m) continue;
    const [, call, path, flags] = m as unknown as [string, string, string, string | undefined];
    if (!path.startsWith(prefix) && path !== outputDir) continue;
    const rel = relative(outputDir, path) || '.';
    const failed = /= -1 /.test(line);
    if (call === 'mkdir' || call === 'mkdirat') {
      if (!failed) createdDirs.add(rel);
    } else if (call.startsWith('open') || call === 'creat') {
      if (call === 'creat' || /O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND/.test(flags ?? '')) wrote.add(rel);
      else if (!failed && !/O_DIRECTORY/.test(flags ?? '')) read.add(rel);
    } else {
      wrote.add(rel);
    }
  }
  return { wrote: [...wrote].sort(), createdDirs: [...createdDirs].sort(), read: [...read].sort() };
}

interface LogEntry {
  current_steps: number;
  total_steps: number;
  loss?: number;
}

function trainerLog(outputDir: string): LogEntry[] {
  return readFileSync(join(outputDir, 'trainer_log.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LogEntry);
}

/** Both ranks met at the rendezvous and LLaMA-Factory's parser saw a world of 2 on the CPU. */
function assertRendezvous(run: GangRun): void {
  run.ranks.forEach((r, rank) => {
    assert.match(r.log, new RegExp(`Multi-node training enabled: num nodes: 2, node rank: ${rank}`), `rank ${rank}'s launcher`);
    assert.match(r.log, new RegExp(`Process rank: ${rank}, world size: 2, device: cpu(:\\d+)?, distributed training: True`), `rank ${rank} joined a world of 2`);
  });
}

// --- tests -------------------------------------------------------------------------------------

test('the compiled 2×1 gang: an Indexed Job of 2 pods with a headless Service, one YAML, torchrun environment per rank', () => {
  for (const strategy of STRATEGIES) {
    const s = stage(strategy);
    const job = s.objects.find((o) => o.kind === 'Job') as (KubeObject & { spec?: { completionMode?: string; completions?: number; parallelism?: number } }) | undefined;
    assert.equal(job?.spec?.completionMode, 'Indexed', s.name);
    assert.equal(job?.spec?.completions, 2);
    assert.equal(job?.spec?.parallelism, 2);
    const service = s.objects.find((o) => o.kind === 'Service') as (KubeObject & { spec?: { clusterIP?: string } }) | undefined;
    assert.equal(service?.spec?.clusterIP, 'None', `${s.name}: a headless Service for the pods' DNS names`);
    for (const rank of [0, 1]) {
      const env = rankEnv(s, rank);
      assert.deepEqual(
        { FORCE_TORCHRUN: env['FORCE_TORCHRUN'], NNODES: env['NNODES'], NODE_RANK: env['NODE_RANK'], NPROC_PER_NODE: env['NPROC_PER_NODE'] },
        { FORCE_TORCHRUN: '1', NNODES: '2', NODE_RANK: String(rank), NPROC_PER_NODE: '1' },
      );
      assert.match(env['MASTER_PORT'] ?? '', /^\d+$/, 'a pinned port: LLaMA-Factory would pick a random one per node');
    }
    const { config } = writeConfig(s);
    if (strategy.startsWith('zero')) assert.equal(config['deepspeed'], local(s, '/config/deepspeed.json'));
    else assert.equal(config['deepspeed'], undefined);
    assert.equal(config['fsdp'] !== undefined, strategy === 'fsdp');
  }
});

/** What rank 1 may write into the shared output folder: its RNG state, and under ZeRO its own partitions. */
const RANK1_OWN = /^checkpoint-\d+\/(rng_state_1\.pth|global_step\d+\/zero_pp_rank_1_mp_rank_00_(optim|model)_states\.pt)$/;

function outputDir(strategy: Strategy): string {
  return writeConfig(stage(strategy)).outputDir;
}

/**
 * The gang killed once a checkpoint is whole (a preempted or lost node): both ranks met and
 * trained, rank 0 wrote the adapter, optimizer, state and log, rank 1 nothing but its own files.
 * Returns the newest whole checkpoint, which a restart must resume from.
 */
async function killMidRun(strategy: Strategy): Promise<number> {
  const run = await runGang(`${strategy}-1-killed`, strategy, { killAfterCheckpoint: SAVE_STEPS });
  const out = outputDir(strategy);
  assert.ok(run.killedAfter !== undefined, `never caught between checkpoints:\n${run.ranks[0]!.log.slice(-3000)}`);
  assertRendezvous(run);
  assert.ok(run.killedAfter < MAX_STEPS, `killed mid-run, after checkpoint-${run.killedAfter}`);
  assert.ok(!existsSync(join(out, 'adapter_model.safetensors')), 'killed before the final save');
  const log = trainerLog(out);
  assert.equal(log[0]!.current_steps, 1);
  assert.equal(log[0]!.total_steps, MAX_STEPS);
  assert.ok(log.at(-1)!.current_steps >= run.killedAfter);
  assert.deepEqual(run.rank1.wrote.filter((p) => !RANK1_OWN.test(p)), [], `rank 1 wrote into the shared output folder: ${run.rank1.wrote.join(', ')}`);
  assert.ok(run.rank1.wrote.includes(`checkpoint-${run.killedAfter}/rng_state_1.pth`), run.rank1.wrote.join(', '));
  assert.ok(run.rank1.createdDirs.every((d) => /^checkpoint-\d+(\/global_step\d+)?$/.test(d)), run.rank1.createdDirs.join(', '));
  return Math.max(...checkpoints(out).filter((n) => checkpointWhole(out, n, strategy)));
}

/** Both ranks of the restarted gang pick the same checkpoint (LLaMA-Factory's own choice, logged per rank). */
function assertSameCheckpoint(run: GangRun, out: string, resumeFrom: number): void {
  for (const [rank, r] of run.ranks.entries()) {
    assert.match(r.log, new RegExp(`Resuming training from ${out}/checkpoint-${resumeFrom}\\.`), `rank ${rank} picks checkpoint-${resumeFrom}`);
  }
}

let ddpResumeFrom: number | undefined;
test('ddp: both ranks rendezvous over gloo and train; the gang is killed once a checkpoint is whole; rank 1 wrote only its RNG state', async () => {
  ddpResumeFrom = await killMidRun('ddp');
});

test('ddp: restarted, both ranks pick the same checkpoint; on a CPU transformers then cannot load optimizer.pt (map_location "cpu:0")', async () => {
  assert.ok(ddpResumeFrom !== undefined, 'the killed run did not happen');
  const out = outputDir('ddp');
  const run = await runGang('ddp-2-resumed', 'ddp');
  assertRendezvous(run);
  assertSameCheckpoint(run, out, ddpResumeFrom);
  // CPU only: with more than one rank the Trainer loads the optimizer onto args.device, which
  // accelerate makes torch.device('cpu', local_rank) on a CPU gang; torch.load has no restore rule
  // for 'cpu:0' (a GPU gang's 'cuda:N' has one). A one-process CPU run maps to 'cpu' and resumes
  // (pipeline.test.ts); a ZeRO gang resumes on the CPU too (DeepSpeed loads its own files), below.
  for (const [rank, r] of run.ranks.entries()) {
    assert.notEqual(r.code, 0, `rank ${rank} resumed a DDP gang on the CPU: transformers changed, make this test assert the resume`);
    assert.match(r.log, /_load_optimizer_and_scheduler[\s\S]*RuntimeError: don't know how to restore data location of torch\.storage\.UntypedStorage \(tagged with cpu:0\)/, `rank ${rank}`);
  }
  assert.ok(run.rank1.read.includes(`checkpoint-${ddpResumeFrom}/optimizer.pt`), 'rank 1 reached the checkpoint\'s optimizer state');
});

let zeroResumeFrom: number | undefined;
test('zero2: the gang is killed once a checkpoint is whole; rank 1 wrote only its RNG state and its own ZeRO partition', async () => {
  zeroResumeFrom = await killMidRun('zero2');
  const partitions = readdirSync(join(outputDir('zero2'), `checkpoint-${zeroResumeFrom}`, `global_step${zeroResumeFrom}`)).sort();
  assert.deepEqual(partitions, ['mp_rank_00_model_states.pt', 'zero_pp_rank_0_mp_rank_00_optim_states.pt', 'zero_pp_rank_1_mp_rank_00_optim_states.pt']);
});

test('zero2: restarted, both ranks resume from the same checkpoint (rank 1 reads its own partition and RNG state) and finish', async () => {
  assert.ok(zeroResumeFrom !== undefined, 'the killed run did not happen');
  const out = outputDir('zero2');
  const linesBefore = trainerLog(out).length;
  const run = await runGang('zero2-2-resumed', 'zero2');
  run.ranks.forEach((r, rank) => assert.equal(r.code, 0, `rank ${rank}:\n${r.log.slice(-3000)}`));
  assertRendezvous(run);
  assertSameCheckpoint(run, out, zeroResumeFrom);
  for (const [rank, r] of run.ranks.entries()) {
    assert.match(r.log, new RegExp(`Continuing training from global step ${zeroResumeFrom}\\b`), `rank ${rank} restores step ${zeroResumeFrom}`);
  }
  // By the kernel's record: rank 1 read DeepSpeed's tag, its own optimizer partition, the model states and its RNG state.
  const at = `checkpoint-${zeroResumeFrom}`;
  for (const f of ['latest', `global_step${zeroResumeFrom}/zero_pp_rank_1_mp_rank_00_optim_states.pt`, `global_step${zeroResumeFrom}/mp_rank_00_model_states.pt`, 'rng_state_1.pth', 'trainer_state.json']) {
    assert.ok(run.rank1.read.includes(`${at}/${f}`), `rank 1 read ${at}/${f}; it read ${run.rank1.read.join(', ')}`);
  }
  assert.ok(!run.rank1.read.includes(`${at}/rng_state_0.pth`), "rank 1 restores its own RNG stream, not rank 0's");
  const log = trainerLog(out);
  assert.equal(log[linesBefore]!.current_steps, zeroResumeFrom + 1, 'the log continues after the checkpoint, not at step 1');
  assert.equal(log.at(-1)!.current_steps, MAX_STEPS);
  assert.equal((JSON.parse(readFileSync(join(out, 'trainer_state.json'), 'utf8')) as { global_step: number }).global_step, MAX_STEPS);
  assert.ok(statSync(join(out, 'adapter_model.safetensors')).size > 0, 'rank 0 saved the final adapter');
  assert.deepEqual(run.rank1.wrote.filter((p) => !RANK1_OWN.test(p)), [], `rank 1 wrote: ${run.rank1.wrote.join(', ')}`);
  assert.ok(run.rank1.wrote.every((p) => Number(/^checkpoint-(\d+)/.exec(p)![1]) > zeroResumeFrom!), 'nothing of the resumed-from checkpoint is rewritten');
  assertZeroConfig(run.ranks[0]!.log, 'zero2');
});

/** DeepSpeed's own print of the engine's config: the stage, and every "auto" filled by the Trainer from the YAML. */
function assertZeroConfig(log0: string, strategy: 'zero2' | 'zero3' | 'zero3-offload'): void {
  assert.match(log0, /Initializing TorchBackend in DeepSpeed with backend gloo/);
  assert.match(log0, new RegExp(`zero_optimization_stage \\.+ ${strategy === 'zero2' ? 2 : 3}\\b`));
  // 2 rows per rank, no accumulation, 2 ranks.
  assert.match(log0, /train_micro_batch_size_per_gpu \.* 2\b/);
  assert.match(log0, /gradient_accumulation_steps \.* 1\b/);
  assert.match(log0, /train_batch_size \.* 4\b/);
  if (strategy === 'zero3-offload') {
    assert.match(log0, /offload_optimizer=DeepSpeedZeroOffloadOptimizerConfig\(device='cpu'/);
    assert.match(log0, /offload_param=DeepSpeedZeroOffloadParamConfig\(device='cpu'/);
    // ZeRO-Offload steps the optimizer on the host with DeepSpeed's own C++ Adam (the layer's built op).
    assert.match(log0, /DeepSpeed Basic Optimizer = DeepSpeedCPUAdam/);
  }
}

for (const strategy of ['zero3', 'zero3-offload'] as const) {
  // zero3 runs under the stage wrapper, as in the pods; zero3-offload runs LLaMA-Factory directly.
  const wrapped = strategy === 'zero3';
  test(`${strategy}: the compiled DeepSpeed config trains the gang to the end${wrapped ? ' under the stage wrapper' : ''}; each rank saves its own parameter and optimizer partitions`, async () => {
    const run = await runGang(strategy, strategy, { wrapped });
    run.ranks.forEach((r, rank) => assert.equal(r.code, 0, `rank ${rank}:\n${r.log.slice(-4000)}`));
    assertRendezvous(run);
    assertZeroConfig(run.ranks[0]!.log, strategy);
    const out = outputDir(strategy);
    assert.equal((JSON.parse(readFileSync(join(out, 'trainer_state.json'), 'utf8')) as { global_step: number }).global_step, MAX_STEPS);
    assert.ok(statSync(join(out, 'adapter_model.safetensors')).size > 0, 'the 16-bit gather on save wrote a whole adapter');
    const partitions = readdirSync(join(out, `checkpoint-${SAVE_STEPS}`, `global_step${SAVE_STEPS}`)).sort();
    assert.deepEqual(partitions, [0, 1].flatMap((r) => [`zero_pp_rank_${r}_mp_rank_00_model_states.pt`, `zero_pp_rank_${r}_mp_rank_00_optim_states.pt`]));
    assert.deepEqual(run.rank1.wrote.filter((p) => !RANK1_OWN.test(p)), [], `rank 1 wrote: ${run.rank1.wrote.join(', ')}`);
    assert.ok(run.rank1.wrote.includes(`checkpoint-${SAVE_STEPS}/global_step${SAVE_STEPS}/zero_pp_rank_1_mp_rank_00_model_states.pt`), run.rank1.wrote.join(', '));
    if (wrapped) assertPublishedByNode0(run, out, strategy);
  });
}

/**
 * Under the wrapper, node 0 alone seals the checkpoints (their SHA256SUMS cover what rank 1 wrote
 * into them) and publishes the folder; node 1 trains and exits without touching the marker.
 */
function assertPublishedByNode0(run: GangRun, out: string, strategy: Strategy): void {
  const [node0, node1] = run.ranks.map((r) => r.log);
  const s = stage(strategy);
  assert.match(node0!, /tunepipe: input \S+ verified/);
  assert.match(node1!, /tunepipe: input \S+ verified/, 'every node checks its inputs');
  assert.match(node1!, new RegExp(`tunepipe: node 1 of stage ${s.name} finished; node 0 publishes`));
  assert.doesNotMatch(node1!, /sealed checkpoint-/, 'node 1 seals nothing');
  for (const n of checkpoints(out)) {
    const sums = readFileSync(join(out, `checkpoint-${n}`, 'SHA256SUMS'), 'utf8');
    for (const f of ['rng_state_0.pth', 'rng_state_1.pth', `global_step${n}/zero_pp_rank_1_mp_rank_00_optim_states.pt`]) {
      assert.match(sums, new RegExp(`  ${f.replace(/\./g, '\\.')}$`, 'm'), `checkpoint-${n}'s SHA256SUMS lists ${f} (written by rank ${f.includes('_1') ? 1 : 0})`);
    }
  }
  assert.match(node0!, new RegExp(`tunepipe: sealed checkpoint-${SAVE_STEPS} `));
  const marker = JSON.parse(readFileSync(join(out, '.tunepipe-complete'), 'utf8')) as { hash: string; files: number };
  assert.equal(marker.hash, s.hash, 'the marker is the stage hash');
  assert.equal(marker.files, readFileSync(join(out, 'SHA256SUMS'), 'utf8').trim().split('\n').length);
  assert.ok(!run.rank1.wrote.includes('.tunepipe-complete') && !run.rank1.wrote.includes('SHA256SUMS'), 'node 1 never writes the marker or the folder\'s sums');
}

test('fsdp: the compiled fsdp / fsdp_config keys pass LLaMA-Factory\'s parser on both ranks; accelerate 1.11 then refuses FSDP without an accelerator', async () => {
  const run = await runGang('fsdp', 'fsdp');
  // get_train_args() (HfArgumentParser over the Trainer's arguments, fsdp_config included) ran on
  // both ranks: its "Process rank" line comes after every check. Training itself needs a GPU.
  assertRendezvous(run);
  for (const [rank, r] of run.ranks.entries()) {
    assert.notEqual(r.code, 0, `rank ${rank} trained FSDP on a CPU: this test's premise changed`);
    assert.match(r.log, /FullyShardedDataParallelPlugin\(\)[\s\S]*RuntimeError: There are currently no available devices found, must be one of 'XPU', 'CUDA'/, `rank ${rank} stops at accelerate's FSDP device check`);
  }
});

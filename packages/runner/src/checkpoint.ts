import { appendFile, mkdir, readdir, readFile, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  brokenCheckpointsDir,
  CHECKPOINT_SEAL,
  checkpointStep,
  lastLoggedStep,
  missingCheckpointParts,
  movedAsideLine,
  MOVED_ASIDE_LOG,
  pickResumeCheckpoint,
  sumsProblem,
  TRAINER_LOG,
  trainerStateFor,
  writeSha256Sums,
  type OutputDirEntry,
  type ResumeDecision,
  type SealCheck,
} from '@tunepipe/core';

/** Reads `output_dir` as `OutputDirEntry`s (empty when it does not exist); seals are not checked. */
export async function readOutputDir(outputDir: string): Promise<OutputDirEntry[]> {
  let names: string[];
  try {
    names = await readdir(outputDir);
  } catch {
    return [];
  }
  const entries: OutputDirEntry[] = [];
  for (const name of names.sort()) {
    const path = join(outputDir, name);
    const info = await stat(path).catch(() => undefined);
    if (info?.isDirectory()) {
      const files: { name: string; size: number }[] = [];
      for (const child of (await readdir(path)).sort()) {
        const childInfo = await stat(join(path, child)).catch(() => undefined);
        if (childInfo?.isFile()) files.push({ name: child, size: childInfo.size });
      }
      entries.push({ name, files });
    } else if (info?.isFile()) {
      entries.push({ name, size: info.size });
    }
  }
  return entries;
}

/** What a checkpoint's seal says, digests included. */
export async function checkSeal(checkpointDir: string): Promise<SealCheck> {
  const problem = await sumsProblem(checkpointDir);
  if (!problem) return { state: 'verified' };
  if (!problem.file && problem.problem.startsWith('it has no ')) return { state: 'unsealed' };
  return { state: 'broken', problem: problem.file ? `${problem.file} ${problem.problem}` : problem.problem };
}

/**
 * Applies `pickResumeCheckpoint` to a local folder (the local target's pre-run step), checking
 * seals newest first and only as far as needed: one full read of the checkpoint resumed from.
 * Moved entries keep their content, in `<output_dir>.broken`, with a line in its log.
 */
export async function repairOutputDir(outputDir: string, now: () => number = Date.now): Promise<ResumeDecision> {
  const entries = await readOutputDir(outputDir);
  const newestFirst = entries
    .filter((e) => e.files && checkpointStep(e.name) !== undefined && missingCheckpointParts(e.files).length === 0)
    .sort((a, b) => checkpointStep(b.name)! - checkpointStep(a.name)!);
  const seals = new Map<string, SealCheck>();
  for (const entry of newestFirst) {
    const seal = await checkSeal(join(outputDir, entry.name));
    seals.set(entry.name, seal);
    if (seal.state === 'verified') break;
  }
  const decision = pickResumeCheckpoint(entries.map((e) => (seals.has(e.name) ? { ...e, seal: seals.get(e.name)! } : e)));
  if (decision.moveAside.length > 0) {
    const aside = brokenCheckpointsDir(outputDir);
    await mkdir(aside, { recursive: true });
    const stamp = Math.floor(now() / 1000);
    for (const { name, reason } of decision.moveAside) {
      await rename(join(outputDir, name), join(aside, `${name}.${stamp}`));
      await appendFile(join(aside, MOVED_ASIDE_LOG), movedAsideLine(stamp, name, reason));
    }
  }
  return decision;
}

/** Newest modification time of a folder and the files in it (ms). */
async function newestChange(dir: string): Promise<number> {
  let newest = (await stat(dir)).mtimeMs;
  for (const name of await readdir(dir)) {
    const info = await stat(join(dir, name)).catch(() => undefined);
    if (info) newest = Math.max(newest, info.mtimeMs);
  }
  return newest;
}

/**
 * Seals every checkpoint of `outputDir` whose save is known to be finished, by the rules of core's
 * resume.ts (a later checkpoint, a later step in trainer_log.jsonl written after it, or no change
 * since `quietSince`). Returns what it sealed and why. Never throws: a checkpoint the trainer
 * deletes meanwhile (save_total_limit) or a full disk just leaves it unsealed.
 */
export async function sealCheckpoints(outputDir: string, quietSince?: number, options: { readonly trainingFinished?: boolean } = {}): Promise<{ readonly name: string; readonly why: string }[]> {
  const sealed: { name: string; why: string }[] = [];
  const entries = await readOutputDir(outputDir);
  const steps = entries.map((e) => (e.files ? checkpointStep(e.name) : undefined)).filter((n): n is number => n !== undefined);
  const log = await Promise.all([readFile(join(outputDir, TRAINER_LOG), 'utf8'), stat(join(outputDir, TRAINER_LOG))]).catch(() => undefined);
  for (const entry of entries) {
    const step = entry.files ? checkpointStep(entry.name) : undefined;
    if (step === undefined || entry.files!.some((f) => f.name === CHECKPOINT_SEAL) || missingCheckpointParts(entry.files!).length > 0) continue;
    const dir = join(outputDir, entry.name);
    try {
      const statePath = join(dir, 'trainer_state.json');
      if (!trainerStateFor(await readFile(statePath, 'utf8'), step)) continue;
      const later = steps.find((n) => n > step);
      const logged = log && log[1].mtimeMs >= (await stat(statePath)).mtimeMs ? lastLoggedStep(log[0]) : undefined;
      const why =
        later !== undefined
          ? `checkpoint-${later} followed it`
          : logged !== undefined && logged > step
            ? `training logged step ${logged} after it`
            : quietSince !== undefined && (await newestChange(dir)) <= quietSince
              ? 'unchanged for the settle time'
              : options.trainingFinished
                ? // The trainer exited 0: every save it started has finished.
                  'training finished'
                : undefined;
      if (!why) continue;
      await writeSha256Sums(dir);
      sealed.push({ name: entry.name, why });
    } catch {
      // Gone or unwritable: it stays unsealed and is not resumed from.
    }
  }
  return sealed;
}

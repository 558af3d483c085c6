import { mkdir, readdir, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { brokenCheckpointsDir, pickResumeCheckpoint, type OutputDirEntry, type ResumeDecision } from '@tunepipe/core';

/** Reads `output_dir` as `OutputDirEntry`s (empty when it does not exist). */
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
    const info = await stat(path);
    if (info.isDirectory()) {
      const files: { name: string; size: number }[] = [];
      for (const child of (await readdir(path)).sort()) {
        const childInfo = await stat(join(path, child));
        if (childInfo.isFile()) files.push({ name: child, size: childInfo.size });
      }
      entries.push({ name, files });
    } else if (info.isFile()) {
      entries.push({ name, size: info.size });
    }
  }
  return entries;
}

/** Applies `pickResumeCheckpoint` to a local folder (the local target's pre-run step). */
export async function repairOutputDir(outputDir: string, now: () => number = Date.now): Promise<ResumeDecision> {
  const decision = pickResumeCheckpoint(await readOutputDir(outputDir));
  if (decision.moveAside.length > 0) {
    const aside = brokenCheckpointsDir(outputDir);
    await mkdir(aside, { recursive: true });
    const stamp = Math.floor(now() / 1000);
    for (const { name } of decision.moveAside) await rename(join(outputDir, name), join(aside, `${name}.${stamp}`));
  }
  return decision;
}


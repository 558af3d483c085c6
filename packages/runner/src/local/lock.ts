import { readFileSync, unlinkSync } from 'node:fs';
import { link, mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { RunnerError } from '../types.ts';
import { processAlive } from '../process-alive.ts';

/**
 * One local run per pipeline and artifacts folder at a time: two runs would execute every stage
 * twice, into the same folders. The lock is a file holding its holder; it is created complete
 * (written aside, then hard-linked into place, which fails when one exists), so a reader never
 * sees half of one.
 */
export const LOCKS_DIR = '.tunepipe-runs';

export interface LockHolder {
  readonly pipeline: string;
  readonly pid: number;
  readonly host: string;
  /** ISO time the run started. */
  readonly startedAt: string;
  /** Linux: the process's start time in clock ticks since boot, which tells a reused PID apart. */
  readonly processStart?: string;
}

export interface RunLock {
  readonly path: string;
  /** Set when a stale lock was taken over: what happened, for the user. */
  readonly note?: string;
  release(): void;
}

export function lockPath(artifactsDir: string, pipeline: string): string {
  return join(artifactsDir, LOCKS_DIR, `${pipeline}.lock`);
}

/** Field 22 of /proc/<pid>/stat (after the command name, which may hold spaces and parentheses). */
function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function parseHolder(text: string): LockHolder | undefined {
  try {
    const value = JSON.parse(text) as Partial<LockHolder>;
    if (typeof value.pid === 'number' && typeof value.host === 'string' && typeof value.startedAt === 'string') return value as LockHolder;
  } catch {
    // not a lock we wrote
  }
  return undefined;
}

/** Why the holder is gone, or undefined when it may still be running. */
function staleBecause(holder: LockHolder | undefined, host: string): string | undefined {
  if (!holder) return 'it is not a lock file tunepipe wrote';
  if (holder.host !== host) return undefined;
  if (!processAlive(holder.pid)) return `its runner (pid ${holder.pid}, started ${holder.startedAt}) is gone`;
  if (holder.processStart !== undefined) {
    const now = processStart(holder.pid);
    if (now !== undefined && now !== holder.processStart) return `its runner (pid ${holder.pid}, started ${holder.startedAt}) is gone; the pid now belongs to another process`;
  }
  return undefined;
}

function describe(holder: LockHolder, path: string, host: string): string {
  const where = holder.host === host ? `pid ${holder.pid}` : `pid ${holder.pid} on host ${holder.host}`;
  const fix =
    holder.host === host
      ? `Wait for it to finish, or stop it (kill ${holder.pid}); a run that is gone leaves a lock the next run takes over`
      : `Wait for it to finish; if that run is gone (this machine cannot check ${holder.host}), delete ${path}`;
  return `another run of pipeline ${holder.pipeline} holds ${path}: ${where}, started ${holder.startedAt}. ${fix}`;
}

/**
 * Takes the pipeline's lock in `artifactsDir`, or throws a RunnerError naming the holder. A lock
 * whose holder died on this host (or that is not a lock at all) is taken over, with a note.
 */
export async function acquireRunLock(artifactsDir: string, pipeline: string, now: () => number = Date.now): Promise<RunLock> {
  const path = lockPath(artifactsDir, pipeline);
  const host = hostname();
  const start = processStart(process.pid);
  const me: LockHolder = { pipeline, pid: process.pid, host, startedAt: new Date(now()).toISOString(), ...(start ? { processStart: start } : {}) };
  const mine = JSON.stringify(me);
  await mkdir(join(artifactsDir, LOCKS_DIR), { recursive: true });
  const draft = `${path}.${process.pid}.tmp`;
  await writeFile(draft, `${mine}\n`);
  let note: string | undefined;
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        await link(draft, path);
        return held(path, mine, note);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const text = await readFile(path, 'utf8').catch(() => undefined);
      if (text === undefined) continue;
      const holder = parseHolder(text);
      const why = staleBecause(holder, host);
      if (!why) throw new RunnerError(describe(holder!, path, host));
      // Move it aside, then check that what moved is what was judged: another run may have
      // taken it over in between, and its fresh lock must go back.
      const aside = `${path}.stale-${process.pid}`;
      try {
        await rename(path, aside);
      } catch {
        continue;
      }
      const moved = await readFile(aside, 'utf8').catch(() => undefined);
      if (moved !== text) {
        await link(aside, path).catch(() => undefined);
        await unlink(aside).catch(() => undefined);
        continue;
      }
      await unlink(aside).catch(() => undefined);
      note = `took over the lock ${path}: ${why}`;
    }
    throw new RunnerError(`could not take the lock ${path}: other runs keep taking it; try again`);
  } finally {
    await unlink(draft).catch(() => undefined);
  }
}

const heldLocks = new Set<{ path: string; content: string }>();
process.on('exit', () => {
  for (const lock of heldLocks) removeIfMine(lock.path, lock.content);
});

function removeIfMine(path: string, content: string): void {
  try {
    if (readFileSync(path, 'utf8').trim() === content) unlinkSync(path);
  } catch {
    // gone already
  }
}

function held(path: string, content: string, note: string | undefined): RunLock {
  const entry = { path, content };
  heldLocks.add(entry);
  return {
    path,
    ...(note ? { note } : {}),
    release() {
      if (!heldLocks.delete(entry)) return;
      removeIfMine(path, content);
    },
  };
}

import { createWriteStream } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import type { CompletionMarker } from '@tunepipe/core';
import { publishLocalStage, type PublishTarget } from './publish.ts';

/**
 * The file operations the local runner does itself (the tools write their own files), in one
 * place so a test can make any of them fail as a full disk, a permission or a vanished folder
 * would.
 */
export interface LocalFs {
  mkdir(path: string): Promise<void>;
  rm(path: string): Promise<void>;
  writeFile(path: string, data: string | Buffer): Promise<void>;
  /** A stage's log, appended to. */
  openLog(path: string): Writable;
  /** SHA256SUMS and the completion marker (core's implementation). */
  publish(target: PublishTarget): Promise<CompletionMarker>;
}

export const nodeFs: LocalFs = {
  mkdir: async (path) => {
    await mkdir(path, { recursive: true });
  },
  rm: (path) => rm(path, { recursive: true, force: true }),
  writeFile: (path, data) => writeFile(path, data),
  openLog: (path) => createWriteStream(path, { flags: 'a' }),
  publish: publishLocalStage,
};

const RESOURCE_ERRORS: Readonly<Record<string, { what: (path: string) => string; fix: string }>> = {
  ENOSPC: { what: (p) => `disk full writing ${p}`, fix: 'free space on that disk (or point --artifacts at a bigger one)' },
  EDQUOT: { what: (p) => `disk quota exceeded writing ${p}`, fix: 'free space within your quota' },
  EACCES: { what: (p) => `no permission for ${p}`, fix: 'give your user write access to it (ls -ld shows the owner)' },
  EPERM: { what: (p) => `operation not permitted on ${p}`, fix: 'give your user write access to it (ls -ld shows the owner)' },
  EROFS: { what: (p) => `${p} is on a read-only file system`, fix: 'point --artifacts at a writable folder' },
  ENOENT: { what: (p) => `${p} is gone`, fix: 'something removed it while the stage ran; check nothing else cleans that folder' },
};

/**
 * A file-system error as the user's problem: what failed, where, and what to do. Undefined for
 * anything else (which is a bug). What was finished stays: nothing is marked complete without
 * its files, so a run after the fix picks up from the same place.
 */
export function resourceFailure(error: unknown, fallbackPath: string): { reason: string; message: string } | undefined {
  const e = error as NodeJS.ErrnoException & { dest?: string };
  const kind = e && typeof e === 'object' && typeof e.code === 'string' ? RESOURCE_ERRORS[e.code] : undefined;
  if (!kind) return undefined;
  const path = e.path ?? e.dest ?? fallbackPath;
  return {
    reason: kind.what(path),
    message: `${e.code}: ${kind.fix}; then run again: finished stages stay cached and this one picks up where it stopped`,
  };
}

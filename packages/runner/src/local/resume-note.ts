import { readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ResumeDecision } from '@tunepipe/core';
import type { CompiledPipeline } from '@tunepipe/core/compiled';
import { stageRunDir } from '../progress/record.ts';
import { formatCheckpointResume } from '../progress/format.ts';

/**
 * What the last local start of an sft stage resumed from and what it moved aside, next to its
 * run record, so `tunepipe status --target local` can say a newer checkpoint was not trusted.
 */
export const RESUME_NOTE_FILE = 'resume.json';

interface ResumeNote {
  readonly at: string;
  readonly resumeFrom?: string;
  readonly movedAside: readonly { readonly name: string; readonly reason: string }[];
  readonly aside: string;
}

export async function writeResumeNote(runDir: string, decision: ResumeDecision, aside: string, at: number): Promise<void> {
  const note: ResumeNote = { at: new Date(at).toISOString(), ...(decision.resumeFrom ? { resumeFrom: decision.resumeFrom } : {}), movedAside: decision.moveAside, aside };
  const path = join(runDir, RESUME_NOTE_FILE);
  await writeFile(`${path}.tmp`, `${JSON.stringify(note, null, 2)}\n`);
  await rename(`${path}.tmp`, path);
}

/**
 * One line per stage whose last local start did not resume from its newest checkpoint: where it
 * resumed from (or that it started over) and what it moved aside, and why.
 */
export function localCheckpointNotes(compiled: CompiledPipeline, artifactsDir: string): string[] {
  const lines: string[] = [];
  for (const stage of compiled.stages) {
    let note: ResumeNote;
    try {
      note = JSON.parse(readFileSync(join(stageRunDir(artifactsDir, stage), RESUME_NOTE_FILE), 'utf8')) as ResumeNote;
    } catch {
      continue;
    }
    if (!Array.isArray(note.movedAside) || note.movedAside.length === 0) continue;
    // The cluster's status line says it the same way (formatCheckpointResume), with the time added here.
    lines.push(`${stage.name}: ${formatCheckpointResume(note)} (${note.at})`);
  }
  return lines;
}

// Pure and import-free on purpose: the compiler (packages/core) can take this file as it is to
// embed `checkpointRepairScript()` in the sft pod's wrapper.

/**
 * Resume after a lost pod. transformers resumes from the `checkpoint-N` with the highest N in
 * `output_dir` (LLaMA-Factory passes it when `overwrite_output_dir` is false) without checking it
 * is whole. A pod killed while saving leaves a half-written one, and resuming from it fails on
 * every retry (no weights) or silently restarts at step 0 (no trainer_state.json). Moving such
 * folders aside makes the trainer pick the previous, complete checkpoint.
 */

/** One entry of the training `output_dir`; directories list their files. */
export interface OutputDirEntry {
  readonly name: string;
  /** Files directly inside, with sizes; absent for plain files. */
  readonly files?: readonly { readonly name: string; readonly size: number }[];
  /** Size of a plain file. */
  readonly size?: number;
}

export interface ResumeDecision {
  /** The checkpoint the trainer will resume from after the moves, if any. */
  readonly resumeFrom?: string;
  /** Entries to move out of `output_dir`, with why. */
  readonly moveAside: readonly { readonly name: string; readonly reason: string }[];
}

const CHECKPOINT = /^checkpoint-(\d+)$/;
const STATE_FILE = 'trainer_state.json';
/** Written after the weights; without them transformers cannot restore the optimizer / LR schedule. */
const OPTIMIZER_FILES = ['optimizer.pt', 'scheduler.pt'] as const;
/** LoRA adapters and full-model weights, in the names transformers and PEFT save them under. */
export const WEIGHT_FILES = [
  'adapter_model.safetensors',
  'adapter_model.bin',
  'model.safetensors',
  'model.safetensors.index.json',
  'pytorch_model.bin',
  'pytorch_model.bin.index.json',
] as const;

function missingParts(files: readonly { readonly name: string; readonly size: number }[]): string[] {
  const present = new Set(files.filter((f) => f.size > 0).map((f) => f.name));
  const missing: string[] = [];
  if (!present.has(STATE_FILE)) missing.push(STATE_FILE);
  if (!WEIGHT_FILES.some((w) => present.has(w))) missing.push('adapter/model weights');
  for (const f of OPTIMIZER_FILES) if (!present.has(f)) missing.push(f);
  return missing;
}

/**
 * Decides which checkpoint training resumes from and what must be moved aside for that: every
 * incomplete `checkpoint-N` (no or empty trainer_state.json, weights, optimizer.pt or
 * scheduler.pt), and, when no complete checkpoint is left, stray top-level weight files (a final
 * save cut short), which would otherwise make LLaMA-Factory refuse the non-empty `output_dir`.
 */
export function pickResumeCheckpoint(entries: readonly OutputDirEntry[]): ResumeDecision {
  const moveAside: { name: string; reason: string }[] = [];
  const complete: { name: string; step: number }[] = [];
  for (const entry of entries) {
    const m = CHECKPOINT.exec(entry.name);
    if (!m || !entry.files) continue;
    const missing = missingParts(entry.files);
    if (missing.length > 0) moveAside.push({ name: entry.name, reason: `incomplete: missing ${missing.join(', ')}` });
    else complete.push({ name: entry.name, step: Number(m[1]) });
  }
  complete.sort((a, b) => b.step - a.step);
  const resumeFrom = complete[0]?.name;
  if (!resumeFrom) {
    for (const entry of entries) {
      if (!entry.files && (WEIGHT_FILES as readonly string[]).includes(entry.name)) {
        moveAside.push({ name: entry.name, reason: 'weights of an unfinished save with no checkpoint to resume from' });
      }
    }
  }
  moveAside.sort((a, b) => stepOf(b.name) - stepOf(a.name) || a.name.localeCompare(b.name));
  return { ...(resumeFrom ? { resumeFrom } : {}), moveAside };
}

function stepOf(name: string): number {
  const m = CHECKPOINT.exec(name);
  return m ? Number(m[1]) : -1;
}

/** Where moved-aside entries go: a sibling of `output_dir`, so nothing in it matches `checkpoint-N`. */
export function brokenCheckpointsDir(outputDir: string): string {
  return `${outputDir}.broken`;
}

/**
 * POSIX sh for the sft pod's stage wrapper (run before `llamafactory-cli train`): the same rules
 * as `pickResumeCheckpoint`, applied to the folder in `dirVariable` (default the wrapper's `work`).
 * Prints one line per moved folder and the checkpoint training will resume from.
 */
export function checkpointRepairScript(dirVariable = 'work'): string {
  const weights = WEIGHT_FILES.join(' ');
  return `# tunepipe: move aside half-written checkpoint-N folders (pod killed while saving) so the
# trainer resumes from the newest complete one instead of failing on every retry.
tp_out="\${${dirVariable}}"
tp_aside="$tp_out.broken"
tp_stamp=$(date +%s)
tp_last=""
if [ -d "$tp_out" ]; then
  for tp_ckpt in "$tp_out"/checkpoint-*; do
    [ -d "$tp_ckpt" ] || continue
    tp_name=\${tp_ckpt##*/}
    tp_n=\${tp_name#checkpoint-}
    case "$tp_n" in ''|*[!0-9]*) continue ;; esac
    tp_missing=""
    [ -s "$tp_ckpt/trainer_state.json" ] || tp_missing="$tp_missing trainer_state.json"
    tp_weights=""
    for tp_w in ${weights}; do
      if [ -s "$tp_ckpt/$tp_w" ]; then tp_weights=1; fi
    done
    [ -n "$tp_weights" ] || tp_missing="$tp_missing adapter/model-weights"
    [ -s "$tp_ckpt/optimizer.pt" ] || tp_missing="$tp_missing optimizer.pt"
    [ -s "$tp_ckpt/scheduler.pt" ] || tp_missing="$tp_missing scheduler.pt"
    if [ -n "$tp_missing" ]; then
      mkdir -p "$tp_aside"
      mv "$tp_ckpt" "$tp_aside/$tp_name.$tp_stamp"
      echo "tunepipe: $tp_name is incomplete (missing:$tp_missing), moved to $tp_aside/$tp_name.$tp_stamp"
    elif [ -z "$tp_last" ] || [ "$tp_n" -gt "$tp_last" ]; then
      tp_last=$tp_n
    fi
  done
  if [ -n "$tp_last" ]; then
    echo "tunepipe: training resumes from checkpoint-$tp_last"
  else
    for tp_w in ${weights}; do
      if [ -f "$tp_out/$tp_w" ]; then
        mkdir -p "$tp_aside"
        mv "$tp_out/$tp_w" "$tp_aside/$tp_w.$tp_stamp"
        echo "tunepipe: no complete checkpoint; moved stray $tp_w aside, training starts from step 0"
      fi
    done
  fi
fi
`;
}

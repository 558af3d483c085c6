// Pure: the stage wrapper embeds the shell below, and the local runner (packages/runner
// checkpoint.ts) applies the same rules to a folder through the functions here.
import { SHA256SUMS, shellCheckFunctions, shellFindListed, TMP_SUFFIX } from './artifacts/protocol.ts';

/**
 * Resume after a lost pod. transformers resumes from the `checkpoint-N` with the highest N in
 * `output_dir` (LLaMA-Factory passes it when `overwrite_output_dir` is false) without checking it
 * is whole. A pod killed while saving leaves a half-written one, a disk can lose or change bytes
 * afterwards, and resuming from such a folder fails on every retry (no weights, a garbage
 * trainer_state.json) or silently restarts at step 0.
 *
 * So a checkpoint gets an integrity record of its own, its *seal*: a `SHA256SUMS` inside
 * `checkpoint-N` (the artifact protocol's format and listing rule), written once the save is
 * known to be finished — while training runs, by a loop beside the trainer (the wrapper's in
 * the pod, the runner's locally). Only a checkpoint whose seal verifies is resumed from; newer
 * ones that are unsealed, broken or incomplete are moved aside (kept, with a note), so the
 * trainer picks the newest trusted one.
 *
 * When is a save finished? The trainer writes the weights, optimizer, scheduler and RNG state
 * and trainer_state.json last; other ranks may still be writing their RNG or optimizer shards.
 * A checkpoint is sealed when its parts are there and trainer_state.json parses for its step,
 * and one of:
 * 1. a later checkpoint-M exists: training went on past step N, which every rank joins only
 *    after its save;
 * 2. LLaMA-Factory's trainer_log.jsonl logs a step after N and was written no earlier than
 *    trainer_state.json (the same proof, a logging interval after the save instead of a save
 *    interval; the time keeps a log left by an earlier attempt from counting);
 * 3. nothing in the folder changed for the settle time (30 s): covers a trainer killed right
 *    after a save, at the small risk of sealing a straggler rank's file mid-write (its later
 *    bytes then fail the seal, so it is not resumed from either).
 * Hashing costs a read of the checkpoint in the background (LoRA: megabytes; a full 8B
 * fine-tune with optimizer state ~80 GB, ~4.5 min at 300 MB/s, while the GPU trains) and one
 * read of the checkpoint resumed from.
 */

/** One entry of the training `output_dir`; directories list their files. */
export interface OutputDirEntry {
  readonly name: string;
  /** Files directly inside, with sizes; absent for plain files. */
  readonly files?: readonly { readonly name: string; readonly size: number }[];
  /** Size of a plain file. */
  readonly size?: number;
  /** For `checkpoint-N`: what its seal says; absent means it was not checked (treated as unsealed). */
  readonly seal?: SealCheck;
}

/** What a checkpoint's seal says about it. */
export type SealCheck =
  | { readonly state: 'verified' }
  | { readonly state: 'unsealed' }
  | { readonly state: 'broken'; readonly problem: string };

export interface ResumeDecision {
  /** The checkpoint the trainer will resume from after the moves, if any. */
  readonly resumeFrom?: string;
  /** Entries to move out of `output_dir`, with why. */
  readonly moveAside: readonly { readonly name: string; readonly reason: string }[];
}

const CHECKPOINT = /^checkpoint-(\d+)$/;
const STATE_FILE = 'trainer_state.json';
/** LLaMA-Factory's log of training steps, appended in `output_dir` at every logging step. */
export const TRAINER_LOG = 'trainer_log.jsonl';
/** A checkpoint's seal: the artifact protocol's SHA256SUMS, inside `checkpoint-N`. */
export const CHECKPOINT_SEAL = SHA256SUMS;
/** Appended in the `.broken` folder: one line per entry moved there, with why. */
export const MOVED_ASIDE_LOG = 'moved-aside.log';
/** How long a checkpoint must stay unchanged to be sealed without a later step seen. */
export const CHECKPOINT_SETTLE_SECONDS = 30;
/** Written after the weights; without them transformers cannot restore the optimizer / LR schedule. */
const OPTIMIZER_FILES = ['optimizer.pt', 'scheduler.pt'] as const;
/**
 * Sharded training keeps the optimizer state elsewhere: DeepSpeed in `global_step<N>/` (each rank
 * its own partition), with `latest` written by rank 0 once every rank has saved; FSDP in
 * `optimizer.bin` (full state dict) or an `optimizer_0/` folder (sharded). The LR schedule is still
 * the Trainer's `scheduler.pt` (LLaMA-Factory's DeepSpeed configs define no scheduler of their own).
 */
const SHARDED_OPTIMIZER_FILES = ['optimizer.pt', 'optimizer.bin', 'latest'] as const;
const SHARDED_OPTIMIZER_DIR = 'optimizer_0';
/** FSDP's full-state-dict weights of a full fine-tune. */
const SHARDED_WEIGHT_FILES = ['pytorch_model_fsdp.bin'] as const;
/** LoRA adapters and full-model weights, in the names transformers and PEFT save them under. */
export const WEIGHT_FILES = [
  'adapter_model.safetensors',
  'adapter_model.bin',
  'model.safetensors',
  'model.safetensors.index.json',
  'pytorch_model.bin',
  'pytorch_model.bin.index.json',
] as const;

export const UNSEALED_REASON = 'was never sealed (its save was not confirmed finished)';

/** The step of a `checkpoint-N` folder name; undefined for any other name. */
export function checkpointStep(name: string): number | undefined {
  const m = CHECKPOINT.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** What a finished save has and these files lack (empty: nothing). */
export function missingCheckpointParts(files: readonly { readonly name: string; readonly size: number }[], options: { readonly sharded?: boolean } = {}): string[] {
  const present = new Set(files.filter((f) => f.size > 0).map((f) => f.name));
  const missing: string[] = [];
  if (!present.has(STATE_FILE)) missing.push(STATE_FILE);
  const weights: readonly string[] = options.sharded ? [...WEIGHT_FILES, ...SHARDED_WEIGHT_FILES] : WEIGHT_FILES;
  if (!weights.some((w) => present.has(w))) missing.push('adapter/model weights');
  if (options.sharded) {
    // The files listing names no folders: `optimizer_0/` is seen by the wrapper's shell check only.
    if (!SHARDED_OPTIMIZER_FILES.some((f) => present.has(f))) missing.push('optimizer state');
    if (!present.has('scheduler.pt')) missing.push('scheduler.pt');
    return missing;
  }
  for (const f of OPTIMIZER_FILES) if (!present.has(f)) missing.push(f);
  return missing;
}

/** Whether a trainer_state.json text is whole JSON for `step` (a save cut short is not). */
export function trainerStateFor(text: string, step: number): boolean {
  try {
    const state = JSON.parse(text) as unknown;
    return typeof state === 'object' && state !== null && (state as Record<string, unknown>)['global_step'] === step;
  } catch {
    return false;
  }
}

/** The step of the last line of trainer_log.jsonl, if it has one. */
export function lastLoggedStep(text: string): number | undefined {
  const last = text.trimEnd().split('\n').at(-1) ?? '';
  const m = /"current_steps":\s*(\d+)/.exec(last);
  return m ? Number(m[1]) : undefined;
}

/**
 * Decides which checkpoint training resumes from and what must be moved aside for that, newest
 * first: an incomplete `checkpoint-N` (no or empty trainer_state.json, weights, optimizer.pt or
 * scheduler.pt) always; until a complete one whose seal verifies is found, every unsealed or
 * broken one too. When none is left to resume from, stray top-level weight files (a final save
 * cut short) go as well, which would otherwise make LLaMA-Factory refuse the non-empty
 * `output_dir`. Seals of checkpoints older than the chosen one are not looked at.
 */
export function pickResumeCheckpoint(entries: readonly OutputDirEntry[]): ResumeDecision {
  const moveAside: { name: string; reason: string }[] = [];
  const checkpoints = entries
    .filter((e) => e.files && checkpointStep(e.name) !== undefined)
    .sort((a, b) => checkpointStep(b.name)! - checkpointStep(a.name)!);
  let resumeFrom: string | undefined;
  for (const entry of checkpoints) {
    const missing = missingCheckpointParts(entry.files!);
    if (missing.length > 0) {
      moveAside.push({ name: entry.name, reason: `is incomplete (missing ${missing.join(', ')})` });
      continue;
    }
    if (resumeFrom) continue;
    const seal = entry.seal ?? { state: 'unsealed' };
    if (seal.state === 'verified') resumeFrom = entry.name;
    else moveAside.push({ name: entry.name, reason: seal.state === 'unsealed' ? UNSEALED_REASON : `fails its integrity check (${seal.problem})` });
  }
  if (!resumeFrom) {
    for (const entry of entries) {
      if (!entry.files && (WEIGHT_FILES as readonly string[]).includes(entry.name)) {
        moveAside.push({ name: entry.name, reason: 'is the weights of an unfinished save with no checkpoint to resume from' });
      }
    }
  }
  moveAside.sort((a, b) => stepOf(b.name) - stepOf(a.name) || a.name.localeCompare(b.name));
  return { ...(resumeFrom ? { resumeFrom } : {}), moveAside };
}

function stepOf(name: string): number {
  return checkpointStep(name) ?? -1;
}

/** Where moved-aside entries go: a sibling of `output_dir`, so nothing in it matches `checkpoint-N`. */
export function brokenCheckpointsDir(outputDir: string): string {
  return `${outputDir}.broken`;
}

/** The line MOVED_ASIDE_LOG gets for one move. */
export function movedAsideLine(stamp: number, name: string, reason: string): string {
  return `${stamp} ${name} -> ${name}.${stamp}: ${reason}\n`;
}

/**
 * Shell defining the checkpoint functions (needs shellCheckFunctions):
 * - `tp_parts <ckpt>`: what a finished save lacks, in `$tp_missing`;
 * - `tp_seal_pass <output_dir> [<ref>]`: seals every checkpoint the rules above call finished;
 *   `<ref>` is a file touched at least the settle time ago (rule 3), or empty;
 * - `tp_seal_loop <output_dir> <ref> <seconds>`: a pass every `<seconds>`; keeps `<ref>` so.
 */
export function checkpointSealFunctions(options: { readonly sharded?: boolean } = {}): string {
  const weights = (options.sharded ? [...WEIGHT_FILES, ...SHARDED_WEIGHT_FILES] : WEIGHT_FILES).join(' ');
  const tmp = `${CHECKPOINT_SEAL}${TMP_SUFFIX}`;
  const optimizer = options.sharded
    ? `  tp_opt=""
  for tp_w in ${SHARDED_OPTIMIZER_FILES.join(' ')}; do
    if [ -s "$1/$tp_w" ]; then tp_opt=1; fi
  done
  if [ -d "$1/${SHARDED_OPTIMIZER_DIR}" ]; then tp_opt=1; fi
  [ -n "$tp_opt" ] || tp_missing="\${tp_missing:+$tp_missing, }optimizer state"
  [ -s "$1/scheduler.pt" ] || tp_missing="\${tp_missing:+$tp_missing, }scheduler.pt"`
    : `  for tp_w in ${OPTIMIZER_FILES.join(' ')}; do
    [ -s "$1/$tp_w" ] || tp_missing="\${tp_missing:+$tp_missing, }$tp_w"
  done`;
  return `tp_parts() {
  tp_missing=""
  [ -s "$1/${STATE_FILE}" ] || tp_missing="\${tp_missing:+$tp_missing, }${STATE_FILE}"
  tp_weights=""
  for tp_w in ${weights}; do
    if [ -s "$1/$tp_w" ]; then tp_weights=1; fi
  done
  [ -n "$tp_weights" ] || tp_missing="\${tp_missing:+$tp_missing, }adapter/model weights"
${optimizer}
}
tp_state_ok() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import json, sys
s = json.load(open(sys.argv[1]))
sys.exit(0 if isinstance(s, dict) and s.get("global_step") == int(sys.argv[2]) else 1)' "$1/${STATE_FILE}" "$2" >/dev/null 2>&1
  else
    tp_end=$(tail -c 2 "$1/${STATE_FILE}" | tr -d ' \\t\\r\\n') && [ "$tp_end" = "}" ] && grep -q "\\"global_step\\": *$2[^0-9]" "$1/${STATE_FILE}"
  fi
}
tp_seal() {
  rm -f "$1/${tmp}"
  if (cd "$1" && ${shellFindListed()} | LC_ALL=C sort | sed 's|^\\./||' |
    while IFS= read -r tp_f; do tp_s=$(sha256sum < "$tp_f") || exit 1; printf '%s  %s\\n' "\${tp_s%% *}" "$tp_f"; done > ${tmp}) &&
    [ -s "$1/${tmp}" ] && mv "$1/${tmp}" "$1/${CHECKPOINT_SEAL}"; then
    return 0
  fi
  rm -f "$1/${tmp}"
  return 1
}
tp_seal_pass() {
  for tp_sc in "$1"/checkpoint-*; do
    [ -d "$tp_sc" ] && [ ! -f "$tp_sc/${CHECKPOINT_SEAL}" ] || continue
    tp_sn=\${tp_sc##*/}
    tp_sn=\${tp_sn#checkpoint-}
    case "$tp_sn" in ''|*[!0-9]*) continue ;; esac
    tp_parts "$tp_sc"
    [ -z "$tp_missing" ] || continue
    tp_state_ok "$tp_sc" "$tp_sn" || continue
    tp_done=""
    for tp_so in "$1"/checkpoint-*; do
      tp_on=\${tp_so##*/}
      tp_on=\${tp_on#checkpoint-}
      case "$tp_on" in ''|*[!0-9]*) continue ;; esac
      if [ -d "$tp_so" ] && [ "$tp_on" -gt "$tp_sn" ]; then tp_done="checkpoint-$tp_on followed it"; fi
    done
    if [ -z "$tp_done" ] && [ -f "$1/${TRAINER_LOG}" ] && [ -z "$(find "$tp_sc/${STATE_FILE}" -newer "$1/${TRAINER_LOG}" 2>/dev/null)" ]; then
      tp_logged=$(tail -n 1 "$1/${TRAINER_LOG}" | sed -n 's/.*"current_steps": *\\([0-9][0-9]*\\).*/\\1/p')
      if [ -n "$tp_logged" ] && [ "$tp_logged" -gt "$tp_sn" ]; then tp_done="training logged step $tp_logged after it"; fi
    fi
    if [ -z "$tp_done" ] && [ -n "\${2:-}" ] && [ -f "$2" ] && [ -z "$(find "$tp_sc" -newer "$2" 2>/dev/null | head -n 1)" ]; then
      tp_done="unchanged since the last pass"
    fi
    # The trainer exited 0: every save it started has finished.
    if [ -z "$tp_done" ] && [ "\${3:-}" = finished ]; then tp_done="training finished"; fi
    [ -n "$tp_done" ] || continue
    [ -z "\${tp_stop:-}" ] || return 0
    if tp_seal "$tp_sc"; then echo "tunepipe: sealed checkpoint-$tp_sn ($tp_done)"; fi
  done
}
tp_seal_loop() {
  set +e
  tp_stop=""
  # Stopped between seals, never in one: a seal cut short would leave a growing SHA256SUMS.tmp
  # in a checkpoint while the wrapper publishes the folder.
  trap 'tp_stop=1' TERM
  rm -f "$2" "$2.next"
  while [ -z "$tp_stop" ]; do
    touch "$2.next"
    tp_seal_pass "$1" "$2"
    [ -z "$tp_stop" ] || break
    sleep "$3" </dev/null >/dev/null 2>&1 &
    tp_sleep=$!
    [ -n "$tp_stop" ] || wait "$tp_sleep"
    kill "$tp_sleep" 2>/dev/null
    # Only now is the mark the settle time old: <ref> never names a younger one, so the
    # wrapper's last pass after the trainer stops can use it too.
    [ -n "$tp_stop" ] || mv -f "$2.next" "$2"
  done
}`;
}

/**
 * POSIX sh for the sft pod's stage wrapper (run before `llamafactory-cli train`): the same rules
 * as `pickResumeCheckpoint`, applied to the folder in `dirVariable` (default the wrapper's `work`),
 * checking seals with their digests. Prints one line per moved entry and the checkpoint training
 * will resume from. `define: false` when the wrapper already defines the functions it uses.
 */
export function checkpointRepairScript(dirVariable = 'work', options: { readonly define?: boolean } = {}): string {
  const weights = WEIGHT_FILES.join(' ');
  const functions = options.define === false ? '' : `${shellCheckFunctions()}\n${checkpointSealFunctions()}\n`;
  return `${functions}# tunepipe: keep only checkpoints training can trust: the newest whose seal verifies; newer
# unsealed, broken or half-written ones are moved aside (kept, with a note), so the trainer
# resumes from that one instead of failing on every retry.
tp_out="\${${dirVariable}}"
tp_aside="$tp_out.broken"
tp_stamp=$(date +%s)
tp_last=""
tp_move_aside() {
  mkdir -p "$tp_aside"
  mv "$tp_out/$1" "$tp_aside/$1.$tp_stamp"
  printf '%s %s -> %s: %s\\n' "$tp_stamp" "$1" "$1.$tp_stamp" "$2" >> "$tp_aside/${MOVED_ASIDE_LOG}"
  echo "tunepipe: $1 $2; moved to $tp_aside/$1.$tp_stamp"
}
if [ -d "$tp_out" ]; then
  tp_steps=$(for tp_c in "$tp_out"/checkpoint-*; do
    [ -d "$tp_c" ] || continue
    tp_n=\${tp_c##*/}
    tp_n=\${tp_n#checkpoint-}
    case "$tp_n" in ''|*[!0-9]*) continue ;; esac
    echo "$tp_n"
  done | sort -rn)
  for tp_n in $tp_steps; do
    tp_ckpt="$tp_out/checkpoint-$tp_n"
    tp_parts "$tp_ckpt"
    if [ -n "$tp_missing" ]; then
      tp_move_aside "checkpoint-$tp_n" "is incomplete (missing $tp_missing)"
    elif [ -n "$tp_last" ]; then
      :
    elif [ ! -f "$tp_ckpt/${CHECKPOINT_SEAL}" ]; then
      tp_move_aside "checkpoint-$tp_n" "${UNSEALED_REASON}"
    elif tp_check_sums "$tp_ckpt" full; then
      tp_last=$tp_n
    else
      tp_move_aside "checkpoint-$tp_n" "fails its integrity check ($tp_why)"
    fi
  done
  if [ -n "$tp_last" ]; then
    echo "tunepipe: training resumes from checkpoint-$tp_last"
  else
    for tp_w in ${weights}; do
      if [ -f "$tp_out/$tp_w" ]; then
        tp_move_aside "$tp_w" "is the weights of an unfinished save with no checkpoint to resume from"
      fi
    done
    echo "tunepipe: no checkpoint to resume from; training starts from step 0"
  fi
fi
`;
}

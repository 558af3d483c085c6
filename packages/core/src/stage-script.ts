import { COMPLETION_MARKER, shellCheckFunctions, shellVerifyInputs, shellWriteMarker, shellWriteSums, STAGE_ENV, WORK_SUFFIX } from './artifacts/protocol.ts';
import { checkpointRepairScript, checkpointSealFunctions, CHECKPOINT_SETTLE_SECONDS } from './resume.ts';

function indent(text: string, prefix: string): string {
  return text.trimEnd().split('\n').map((line) => (line ? prefix + line : line)).join('\n');
}

export { GATE_FAILED_EXIT_CODE, INPUT_CORRUPT_EXIT_CODE, type PublishMode, type WrapperStep } from './artifacts/protocol.ts';

export interface StageScriptOptions {
  /**
   * One wrapper per node of a multi-node training gang, all on the same output_dir on the shared
   * volume. Only node 0 (NODE_RANK=0) moves checkpoints aside before training, seals them while it
   * runs and publishes the folder: two nodes moving the same checkpoint aside, or sealing and
   * hashing a folder at once, would race, and a published folder must be written by one writer.
   * The other nodes start torchrun at once and wait in its rendezvous (up to
   * RENDEZVOUS_TIMEOUT_SECONDS), which node 0's torchrun hosts and starts only after the repair:
   * no rank reads output_dir (to find the checkpoint to resume from) before node 0 has decided it,
   * so every rank resumes from the same checkpoint.
   */
  readonly gang?: boolean;
  /** Checkpoints keep their optimizer state as DeepSpeed or FSDP shards (see checkpointSealFunctions). */
  readonly shardedCheckpoints?: boolean;
}

/**
 * POSIX sh run in every batch pod: skip when complete, check the inputs, run the tool (sealing
 * checkpoints beside it in place), publish, mark complete.
 *
 * What is checked, and what it costs:
 * - inputs (`TUNEPIPE_INPUTS`): every byte against SHA256SUMS, before the tool starts. A 16 GB
 *   merged model takes about a minute at 300 MB/s, against GPU hours spent on a corrupt one; a
 *   mismatch exits INPUT_CORRUPT_EXIT_CODE, which fails the Job without retries.
 * - the stage's own folder, when a marker says it is complete: names only (the marker is this
 *   hash's, SHA256SUMS lists exactly the files there, as many as the marker says). Hashing it
 *   would re-read the whole output on every re-applied Job, and the stages that read it check
 *   its bytes anyway. A folder that fails is not trusted: its marker is removed and the stage
 *   runs again (in place: resuming from its checkpoints).
 */
export function stageScript(options: StageScriptOptions = {}): string {
  const gang = options.gang === true;
  // Only node 0 of a gang writes to the shared folder outside training (see StageScriptOptions).
  const lead = (test: string) => (gang ? `${test} && [ -n "$tp_lead" ]` : test);
  return `#!/bin/sh
# tunepipe stage wrapper: stage.sh <rename|in-place> <artifact-dir> -- <command...>
set -eu
mode="$1"; out="$2"; shift 3
step="\${${STAGE_ENV.step}:-all}"
marker="$out/${COMPLETION_MARKER}"
if [ "$mode" = rename ]; then work="$out${WORK_SUFFIX}"; else work="$out"; fi
${shellCheckFunctions()}
${checkpointSealFunctions(options.shardedCheckpoints ? { sharded: true } : {})}
${gang ? `tp_lead=""
if [ "\${NODE_RANK:-0}" = 0 ]; then tp_lead=1; fi
` : ''}if [ -f "$marker" ]; then
  if [ "\${${STAGE_ENV.force}:-0}" = "1" ]; then
${gang ? `    if [ -n "$tp_lead" ]; then
      rm -f "$marker"
      if [ "$mode" = in-place ] && [ "$step" != publish ]; then rm -rf "$out"; fi
    fi` : `    rm -f "$marker"
    # A forced re-run starts over; resuming would only re-publish the old result. A retry of the
    # forced run finds no marker and resumes from its own checkpoints.
    if [ "$mode" = in-place ] && [ "$step" != publish ]; then rm -rf "$out"; fi`}
  elif tp_check_folder "$out" names "\${${STAGE_ENV.hash}}"; then
    echo "tunepipe: stage \${${STAGE_ENV.stage}} already complete in $out (cached), nothing to do"
    exit 0
  else
    echo "tunepipe: $out is marked complete but $tp_why; running the stage again"
    ${gang ? 'if [ -n "$tp_lead" ]; then rm -f "$marker"; fi' : 'rm -f "$marker"'}
  fi
fi
if [ "$step" != publish ]; then
${indent(shellVerifyInputs(), '  ')}
  if [ "$mode" = rename ]; then rm -rf "$work"; fi
  mkdir -p "$work"
  if ${lead('[ "$mode" = in-place ]')}; then
${indent(checkpointRepairScript('work', { define: false }), '    ')}
  fi
fi
echo "tunepipe: stage \${${STAGE_ENV.stage}} (\${${STAGE_ENV.hash}}) $step: $*"
tp_sealer=""
tp_ref="\${TMPDIR:-/tmp}/tunepipe-seal.$$"
if ${lead('[ "$mode" = in-place ] && [ "$step" != publish ]')}; then
  tp_seal_loop "$work" "$tp_ref" "\${${STAGE_ENV.sealSeconds}:-${CHECKPOINT_SETTLE_SECONDS}}" &
  tp_sealer=$!
fi
tp_rc=0
"$@" || tp_rc=$?
if [ -n "$tp_sealer" ]; then
  kill "$tp_sealer" 2>/dev/null || true
  wait "$tp_sealer" 2>/dev/null || true
  # Whatever the tool's exit, a checkpoint it finished before stopping is worth resuming from; after
  # a clean exit every checkpoint it wrote is finished.
  if [ "$tp_rc" -eq 0 ]; then tp_seal_pass "$work" "$tp_ref" finished || true; else tp_seal_pass "$work" "$tp_ref" || true; fi
  rm -f "$tp_ref" "$tp_ref.next"
fi
if [ "$tp_rc" -ne 0 ]; then exit "$tp_rc"; fi
if [ "$step" = run ]; then exit 0; fi
${gang ? `if [ -z "$tp_lead" ]; then
  echo "tunepipe: node \${NODE_RANK} of stage \${${STAGE_ENV.stage}} finished; node 0 publishes $out"
  exit 0
fi
` : ''}if [ "$mode" = rename ]; then
  rm -rf "$out"
  mv "$work" "$out"
fi
cd "$out"
${shellWriteSums()}
${shellWriteMarker()}
echo "tunepipe: stage \${${STAGE_ENV.stage}} complete: $files files in $out"
`;
}

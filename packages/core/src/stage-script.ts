import { COMPLETION_MARKER, shellWriteMarker, shellWriteSums, STAGE_ENV, WORK_SUFFIX } from './artifacts/protocol.ts';
import { checkpointRepairScript } from './resume.ts';

function indent(text: string, prefix: string): string {
  return text.trimEnd().split('\n').map((line) => (line ? prefix + line : line)).join('\n');
}

export { GATE_FAILED_EXIT_CODE, type PublishMode, type WrapperStep } from './artifacts/protocol.ts';

/** POSIX sh run in every batch pod: skip when complete, run the tool, publish, mark complete. */
export function stageScript(): string {
  return `#!/bin/sh
# tunepipe stage wrapper: stage.sh <rename|in-place> <artifact-dir> -- <command...>
set -eu
mode="$1"; out="$2"; shift 3
step="\${${STAGE_ENV.step}:-all}"
marker="$out/${COMPLETION_MARKER}"
if [ "$mode" = rename ]; then work="$out${WORK_SUFFIX}"; else work="$out"; fi
if [ -f "$marker" ]; then
  if [ "\${${STAGE_ENV.force}:-0}" != "1" ]; then
    echo "tunepipe: stage \${${STAGE_ENV.stage}} already complete in $out (cached), nothing to do"
    exit 0
  fi
  rm -f "$marker"
  # A forced re-run starts over; resuming would only re-publish the old result. A retry of the
  # forced run finds no marker and resumes from its own checkpoints.
  if [ "$mode" = in-place ] && [ "$step" != publish ]; then rm -rf "$out"; fi
fi
if [ "$step" != publish ]; then
  if [ "$mode" = rename ]; then rm -rf "$work"; fi
  mkdir -p "$work"
  if [ "$mode" = in-place ]; then
${indent(checkpointRepairScript('work'), '    ')}
  fi
fi
echo "tunepipe: stage \${${STAGE_ENV.stage}} (\${${STAGE_ENV.hash}}) $step: $*"
"$@"
if [ "$step" = run ]; then exit 0; fi
if [ "$mode" = rename ]; then
  rm -rf "$out"
  mv "$work" "$out"
fi
cd "$out"
${shellWriteSums()}
${shellWriteMarker()}
echo "tunepipe: stage \${${STAGE_ENV.stage}} complete: $files files in $out"
`;
}

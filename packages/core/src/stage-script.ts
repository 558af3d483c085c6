import { COMPLETION_MARKER } from './context.ts';
import { checkpointRepairScript } from './resume.ts';

function indent(text: string, prefix: string): string {
  return text.trimEnd().split('\n').map((line) => (line ? prefix + line : line)).join('\n');
}

/**
 * How a batch stage publishes its artifact folder:
 * - `rename`: the tool writes to `<out>.partial`, which is renamed to `<out>` when it succeeds, so
 *   a half-written export is never mistaken for a finished one;
 * - `in-place`: the tool writes straight to `<out>` because it must find its own earlier output
 *   there (SFT resumes from `checkpoint-N` after a preemption).
 * Either way the completion marker is written last, after the digests.
 */
export type PublishMode = 'rename' | 'in-place';

/**
 * Which part of the wrapper a container runs (env `TUNEPIPE_STEP`): `all` runs the tool and
 * publishes; a gated stage splits it into `run` (the tool, in an init container) and `publish`
 * (the gate check, then publication) so a failed gate never leaves a completion marker.
 */
export type WrapperStep = 'all' | 'run' | 'publish';

/** Exit code of a failed evaluation gate: the Job fails at once instead of retrying the GPU work. */
export const GATE_FAILED_EXIT_CODE = 3;

/** POSIX sh run in every batch pod: skip when complete, run the tool, publish, mark complete. */
export function stageScript(): string {
  return `#!/bin/sh
# tunepipe stage wrapper: stage.sh <rename|in-place> <artifact-dir> -- <command...>
set -eu
mode="$1"; out="$2"; shift 3
step="\${TUNEPIPE_STEP:-all}"
marker="$out/${COMPLETION_MARKER}"
if [ "$mode" = rename ]; then work="$out.partial"; else work="$out"; fi
if [ -f "$marker" ]; then
  if [ "\${TUNEPIPE_FORCE:-0}" != "1" ]; then
    echo "tunepipe: stage \${TUNEPIPE_STAGE} already complete in $out (cached), nothing to do"
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
echo "tunepipe: stage \${TUNEPIPE_STAGE} (\${TUNEPIPE_HASH}) $step: $*"
"$@"
if [ "$step" = run ]; then exit 0; fi
if [ "$mode" = rename ]; then
  rm -rf "$out"
  mv "$work" "$out"
fi
cd "$out"
find . -type f ! -name SHA256SUMS ! -name SHA256SUMS.tmp ! -name '${COMPLETION_MARKER}*' | LC_ALL=C sort | sed 's|^\\./||' |
  while IFS= read -r f; do sha256sum -- "$f"; done > SHA256SUMS.tmp
mv SHA256SUMS.tmp SHA256SUMS
files=$(wc -l < SHA256SUMS | tr -d ' ')
printf '{"stage":"%s","hash":"%s","files":%s}\\n' "\${TUNEPIPE_STAGE}" "\${TUNEPIPE_HASH}" "$files" > "${COMPLETION_MARKER}.tmp"
mv "${COMPLETION_MARKER}.tmp" "${COMPLETION_MARKER}"
echo "tunepipe: stage \${TUNEPIPE_STAGE} complete: $files files in $out"
`;
}

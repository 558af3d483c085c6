import { COMPLETION_MARKER } from './context.ts';

/**
 * How a batch stage publishes its artifact folder:
 * - `rename`: the tool writes to `<out>.partial`, which is renamed to `<out>` when it succeeds, so
 *   a half-written export is never mistaken for a finished one;
 * - `in-place`: the tool writes straight to `<out>` because it must find its own earlier output
 *   there (SFT resumes from `checkpoint-N` after a preemption).
 * Either way the completion marker is written last, after the digests.
 */
export type PublishMode = 'rename' | 'in-place';

/** POSIX sh run in every batch pod: skip when complete, run the tool, publish, mark complete. */
export function stageScript(extraPreRun = ''): string {
  return `#!/bin/sh
# tunepipe stage wrapper: usage stage.sh <rename|in-place> <artifact-dir> -- <command...>
set -eu
mode="$1"; out="$2"; shift 3
marker="$out/${COMPLETION_MARKER}"
if [ -f "$marker" ] && [ "\${TUNEPIPE_FORCE:-0}" != "1" ]; then
  echo "tunepipe: stage \${TUNEPIPE_STAGE} already complete in $out (cached), nothing to do"
  exit 0
fi
rm -f "$marker"
if [ "$mode" = rename ]; then
  work="$out.partial"
  rm -rf "$work"
else
  work="$out"
fi
mkdir -p "$work"
${extraPreRun}
echo "tunepipe: stage \${TUNEPIPE_STAGE} (\${TUNEPIPE_HASH}) running: $*"
"$@"
if [ "$mode" = rename ]; then
  rm -rf "$out"
  mv "$work" "$out"
fi
cd "$out"
find . -type f ! -name SHA256SUMS ! -name SHA256SUMS.tmp ! -name '${COMPLETION_MARKER}*' | LC_ALL=C sort | sed 's|^\\./||' |
  while IFS= read -r f; do sha256sum "$f"; done > SHA256SUMS.tmp
mv SHA256SUMS.tmp SHA256SUMS
files=$(wc -l < SHA256SUMS | tr -d ' ')
printf '{"stage":"%s","hash":"%s","files":%s}\\n' "\${TUNEPIPE_STAGE}" "\${TUNEPIPE_HASH}" "$files" > "${COMPLETION_MARKER}.tmp"
mv "${COMPLETION_MARKER}.tmp" "${COMPLETION_MARKER}"
echo "tunepipe: stage \${TUNEPIPE_STAGE} complete: $files files in $out"
`;
}

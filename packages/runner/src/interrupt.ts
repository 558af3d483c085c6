/**
 * The Ctrl-C contract of `tunepipe run`: the first SIGINT/SIGTERM aborts the returned signal
 * (cluster: detach and leave the Jobs running; local: stop the processes, a re-run resumes);
 * a second one exits at once with 130.
 */
export function detachOnInterrupt(onSecond: () => void = () => process.exit(130)): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const handler = () => {
    if (controller.signal.aborted) onSecond();
    else controller.abort();
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    signal: controller.signal,
    dispose() {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}

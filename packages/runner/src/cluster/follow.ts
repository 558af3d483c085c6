import { LogProgressParser, type LogProgress } from '../progress/parse.ts';
import type { KubeClient } from './kube.ts';

/**
 * Follows the log of a stage's current pod, switching when Kubernetes replaces the pod, and
 * keeps one parser across pods so the numbers carry over a preemption.
 */
export class PodLogFollower {
  readonly parser = new LogProgressParser();
  #pod: string | undefined;
  #controller: AbortController | undefined;
  #stream: Promise<void> | undefined;
  #ended = false;
  #lastTextAt: Date | undefined;
  readonly #runSignal: AbortSignal;

  constructor(
    readonly client: KubeClient,
    readonly namespace: string,
    runSignal: AbortSignal,
    readonly onProgress: (progress: LogProgress) => void,
  ) {
    this.#runSignal = runSignal;
  }

  get pod(): string | undefined {
    return this.#pod;
  }

  /**
   * Starts following `pod`'s `container` unless it is already followed. When the API server
   * closed the stream while the container still runs, picks up from the last text received.
   */
  follow(pod: string, container: string, running = true): void {
    const key = `${pod}/${container}`;
    if (this.#runSignal.aborted) return;
    let since: Date | undefined;
    if (this.#pod === key) {
      if (!this.#ended || !running) return;
      since = this.#lastTextAt;
    }
    this.#controller?.abort();
    this.#pod = key;
    this.#ended = false;
    const controller = new AbortController();
    this.#controller = controller;
    const onRunAbort = () => controller.abort();
    this.#runSignal.addEventListener('abort', onRunAbort, { once: true });
    this.#stream = this.client
      .followPodLog(
        this.namespace,
        pod,
        container,
        (text) => {
          this.#lastTextAt = new Date();
          if (this.parser.push(text)) this.onProgress(this.parser.progress);
        },
        controller.signal,
        since,
      )
      .then((outcome) => {
        if (this.#pod !== key) return;
        // Not readable yet (container still starting): let the next poll try again.
        if (outcome === 'unavailable') this.#pod = undefined;
        else this.#ended = true;
      })
      .catch(() => {
        // A broken log stream only costs progress detail; the Job's conditions decide the outcome.
        if (this.#pod === key) this.#pod = undefined;
      })
      .finally(() => this.#runSignal.removeEventListener('abort', onRunAbort));
  }

  /** Waits (briefly) for the current stream to end so the last lines (final metrics) are parsed. */
  async drain(timeoutMs: number): Promise<LogProgress> {
    if (this.#stream) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.#stream, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
      clearTimeout(timer);
    }
    this.stop();
    if (this.parser.end()) this.onProgress(this.parser.progress);
    return this.parser.progress;
  }

  stop(): void {
    this.#controller?.abort();
  }
}

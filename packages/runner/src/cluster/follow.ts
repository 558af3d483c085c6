import { LogProgressParser, type LogProgress } from '../progress/parse.ts';
import type { KubeClient } from './kube.ts';

/**
 * Follows the log of a stage's current pod, switching when Kubernetes replaces the pod, and
 * keeps one parser across pods so the numbers carry over a preemption. The stage loop runs on
 * watch events, not on a timer, so a stream that ends or breaks calls `onStreamEnd` (at once
 * when it ended, after `retryMs` when it failed) for the loop to look again and pick it up.
 */
export class PodLogFollower {
  readonly parser = new LogProgressParser();
  #pod: string | undefined;
  #controller: AbortController | undefined;
  #stream: Promise<void> | undefined;
  #ended = false;
  #lastTextAt: Date | undefined;
  readonly #runSignal: AbortSignal;
  readonly #onStreamEnd: () => void;
  readonly #retryMs: number;
  #wakeTimer: NodeJS.Timeout | undefined;
  #quickEnds = 0;

  constructor(
    readonly client: KubeClient,
    readonly namespace: string,
    runSignal: AbortSignal,
    readonly onProgress: (progress: LogProgress) => void,
    options: { onStreamEnd?: () => void; retryMs?: number } = {},
  ) {
    this.#runSignal = runSignal;
    this.#onStreamEnd = options.onStreamEnd ?? (() => undefined);
    this.#retryMs = options.retryMs ?? 1000;
  }

  #wakeLater(ms: number): void {
    if (this.#runSignal.aborted) return;
    clearTimeout(this.#wakeTimer);
    this.#wakeTimer = setTimeout(this.#onStreamEnd, ms);
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
    const startedAt = Date.now();
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
        if (this.#pod !== key || controller.signal.aborted) return;
        // Not readable yet (container still starting): look again a little later.
        if (outcome === 'unavailable') {
          this.#pod = undefined;
          this.#wakeLater(this.#retryMs);
        } else {
          this.#ended = true;
          // Picked up again at once; but a stream that ends as soon as it opens (the container
          // just stopped, its pod not updated yet) is retried with a growing delay, not in a loop.
          this.#quickEnds = Date.now() - startedAt < 10 ? this.#quickEnds + 1 : 0;
          this.#wakeLater(this.#quickEnds === 0 ? 0 : Math.min(this.#retryMs, 10 * 2 ** this.#quickEnds));
        }
      })
      .catch(() => {
        // A broken log stream only costs progress detail; the Job's conditions decide the outcome.
        if (this.#pod !== key || controller.signal.aborted) return;
        this.#pod = undefined;
        this.#wakeLater(this.#retryMs);
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
    clearTimeout(this.#wakeTimer);
    this.#controller?.abort();
  }
}

import type { KubernetesObject } from '@kubernetes/client-node';
import { ForbiddenKubeError, KubeError, RequestAbortedError, TransientKubeError, type KubeClient, type WatchEvent } from './kube.ts';

/**
 * Wakes a loop that waits for something to change. A wake that comes while the loop is busy is
 * kept, so none is lost, and many make one: the loop looks at the caches as they are then.
 * `settleMs` lets a burst (a Job and its pod changing together, on two watches) arrive before
 * the loop looks.
 */
export class Waker {
  #pending = false;
  #resolve: (() => void) | undefined;
  readonly #settleMs: number;

  constructor(settleMs = 0) {
    this.#settleMs = settleMs;
  }

  readonly wake = (): void => {
    this.#pending = true;
    const resolve = this.#resolve;
    this.#resolve = undefined;
    resolve?.();
  };

  /** Resolves on the next wake (or one that came since the last wait), after `timeoutMs`, or on abort. */
  async wait(timeoutMs: number, signal: AbortSignal): Promise<void> {
    if (!this.#pending && !signal.aborted) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          this.#resolve = undefined;
          resolve();
        };
        const timer = setTimeout(done, timeoutMs);
        signal.addEventListener('abort', done, { once: true });
        this.#resolve = done;
      });
    }
    if (this.#settleMs > 0 && this.#pending && !signal.aborted) await sleep(this.#settleMs, signal);
    this.#pending = false;
  }
}

export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

export interface InformerOptions {
  /** Stops the informer (the stage ended, or the run). */
  readonly signal: AbortSignal;
  /** Called after every change of the cached set, and when the informer fails. */
  readonly onChange: () => void;
  /** Poll interval when the server refuses watches (a proxy without streaming, a Role without `watch`). */
  readonly pollMs: number;
  /**
   * A watch without a byte for this long (no event, no bookmark) is given up and re-opened: a
   * proxy or a black-holed server can keep a dead stream open forever. @default 150000
   */
  readonly idleMs?: number;
}

const nameOf = (o: KubernetesObject) => o.metadata?.name ?? '';

/**
 * A list+watch cache of one collection (one Job by name, the pods of a Job): lists once, then
 * watches from the list's resourceVersion with bookmarks; a 410 Gone (the version was compacted
 * away) lists again, a cut stream is re-opened from the last version seen. Objects that
 * disappear are kept for `takeDeleted` with their last known state. When the API refuses
 * watches it polls every `pollMs` instead. A failure it cannot ride out (ApiOutageError, a
 * non-transient error of a list) is kept in `failure`.
 */
export class Informer<T extends KubernetesObject> {
  readonly #items = new Map<string, T>();
  readonly #seen = new Set<string>();
  #deleted: T[] = [];
  #resourceVersion = '';
  #failure: Error | undefined;
  readonly #ready: Promise<void>;
  #markReady!: () => void;
  readonly #stop = new AbortController();
  readonly #signal: AbortSignal;

  constructor(
    readonly client: KubeClient,
    readonly path: string,
    readonly selectors: { readonly labelSelector?: string; readonly fieldSelector?: string },
    readonly what: string,
    readonly options: InformerOptions,
  ) {
    this.#ready = new Promise<void>((resolve) => (this.#markReady = resolve));
    this.#signal = AbortSignal.any([options.signal, this.#stop.signal]);
  }

  start(): this {
    void this.#run();
    return this;
  }

  stop(): void {
    this.#stop.abort();
  }

  /** Resolves once the first list is in (or the informer failed or stopped: check `failure`). */
  ready(): Promise<void> {
    return this.#ready;
  }

  get failure(): Error | undefined {
    return this.#failure;
  }

  items(): T[] {
    return [...this.#items.values()];
  }

  get(name: string): T | undefined {
    return this.#items.get(name);
  }

  /** Whether `name` was ever in the cache. */
  seen(name: string): boolean {
    return this.#seen.has(name);
  }

  /** Objects removed since the last call, in their last known state. */
  takeDeleted(): T[] {
    const deleted = this.#deleted;
    this.#deleted = [];
    return deleted;
  }

  /**
   * Puts what a write returned into the cache when the watch has not delivered it yet, so the
   * loop does not mistake "not seen yet" for "gone".
   */
  observe(object: T): void {
    const name = nameOf(object);
    if (!name || this.#items.has(name)) return;
    this.#items.set(name, object);
    this.#seen.add(name);
    this.options.onChange();
  }

  #set(object: T): void {
    const name = nameOf(object);
    this.#items.set(name, object);
    this.#seen.add(name);
  }

  #remove(name: string, last: T): void {
    const known = this.#items.get(name) ?? last;
    if (this.#items.delete(name)) this.#deleted.push(known);
  }

  #replace(items: readonly T[]): void {
    const fresh = new Set(items.map(nameOf));
    for (const [name, known] of this.#items) if (!fresh.has(name)) this.#remove(name, known);
    for (const item of items) this.#set(item);
  }

  #apply(event: WatchEvent<T>): void {
    const rv = event.object?.metadata?.resourceVersion;
    if (rv) this.#resourceVersion = rv;
    if (event.type === 'BOOKMARK') return;
    if (event.type === 'DELETED') this.#remove(nameOf(event.object), event.object);
    else this.#set(event.object);
    this.options.onChange();
  }

  #fail(error: Error): void {
    this.#failure = error;
    this.#markReady();
    this.options.onChange();
  }

  async #run(): Promise<void> {
    const signal = this.#signal;
    let needList = true;
    let pollOnly = false;
    let watchFailures = 0;
    while (!signal.aborted) {
      if (needList) {
        try {
          const list = await this.client.list<T>(this.path, this.selectors, `listing ${this.what}`, { signal });
          this.#replace(list.items);
          this.#resourceVersion = list.resourceVersion;
        } catch (error) {
          if (signal.aborted || error instanceof RequestAbortedError) break;
          return this.#fail(error as Error);
        }
        needList = false;
        this.#markReady();
        this.options.onChange();
      }
      if (pollOnly) {
        await sleep(this.options.pollMs, signal);
        needList = true;
        continue;
      }
      const opened = Date.now();
      let delivered = false;
      try {
        await this.client.watch<T>(
          this.path,
          { ...this.selectors, resourceVersion: this.#resourceVersion, idleMs: this.options.idleMs ?? 150_000 },
          `watching ${this.what}`,
          (event) => {
            delivered = true;
            this.#apply(event);
          },
          { signal },
        );
        // The server ended the watch (its timeoutSeconds): go on from the last version seen.
        watchFailures = 0;
      } catch (error) {
        if (signal.aborted || error instanceof RequestAbortedError) break;
        if (error instanceof KubeError && error.status === 410) {
          needList = true;
          continue;
        }
        const refused =
          (error instanceof ForbiddenKubeError && !this.client.inOutage) || (error instanceof KubeError && [400, 405, 406, 415, 501].includes(error.status ?? 0));
        if (refused) {
          pollOnly = true;
          needList = true;
          continue;
        }
        if (!(error instanceof TransientKubeError) && !(error instanceof ForbiddenKubeError)) return this.#fail(error as Error);
        // A stream that worked for a while and was cut starts the count afresh.
        if (delivered || Date.now() - opened > 10_000) watchFailures = 0;
        watchFailures++;
        // Twice in a row: list (the list's retries wait out an outage and tell when to give up).
        if (watchFailures >= 2) needList = true;
        await sleep(this.client.backoffMs(watchFailures - 1), signal);
      }
    }
    this.#markReady();
  }
}

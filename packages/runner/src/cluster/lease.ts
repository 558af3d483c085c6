import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { LABELS, MANAGED_BY } from '@tunepipe/core/labels';
import { RunnerError } from '../types.ts';
import { ApiOutageError, ForbiddenKubeError, KubeError, RequestAbortedError, formatSeconds, type KubeClient, type Lease } from './kube.ts';
import { sleep } from './watch.ts';
import { processAlive } from '../process-alive.ts';

export interface RunLockOptions {
  /**
   * When a live run already holds the lock: `follow` its stages read-only (watching their Jobs,
   * pods and logs) and take over what is left once it ends, or `fail` at once naming it (the
   * CLI's `--no-wait`). @default 'follow'
   */
  readonly whenHeld?: 'follow' | 'fail';
  /** How long a holder that stopped renewing keeps the lock. @default 30 */
  readonly durationSeconds?: number;
  /** @default a third of the duration */
  readonly renewMs?: number;
  /** How often a following run looks at the lock again. @default 2000 */
  readonly waitPollMs?: number;
  /** How often a following run says who holds the lock and for how long. @default 30000 */
  readonly waitNoteMs?: number;
  /** What the holder is described as (tests). @default user@host (pid) */
  readonly holder?: Partial<HolderInfo>;
}

export interface HolderInfo {
  readonly user: string;
  readonly host: string;
  readonly pid: number;
  /** Same machine (and boot) as this process: a dead pid there means a dead holder. */
  readonly machine: string;
  readonly startedAt: string;
}

const ANNOTATION = {
  user: 'tunepipe.dev/run-user',
  host: 'tunepipe.dev/run-host',
  pid: 'tunepipe.dev/run-pid',
  machine: 'tunepipe.dev/run-machine',
  startedAt: 'tunepipe.dev/run-started-at',
} as const;

/** One lock per pipeline and namespace. */
export const runLockName = (pipeline: string) => `tunepipe-run-${pipeline}`.slice(0, 253).replace(/[^a-z0-9.-]+/g, '-').replace(/[-.]+$/, '');

function machineId(): string {
  let boot = '';
  try {
    boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    // not Linux: the hostname alone
  }
  return `${hostname()}${boot ? `/${boot}` : ''}`;
}

function currentUser(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env['USER'] ?? process.env['USERNAME'] ?? 'unknown';
  }
}

/** RFC 3339 with microseconds, as Lease times (MicroTime) are written. */
const microTime = (ms: number) => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

function holderOf(lease: Lease): Partial<HolderInfo> & { identity?: string } {
  const a = lease.metadata?.annotations ?? {};
  const pid = Number(a[ANNOTATION.pid]);
  return {
    ...(lease.spec?.holderIdentity ? { identity: lease.spec.holderIdentity } : {}),
    ...(a[ANNOTATION.user] ? { user: a[ANNOTATION.user] } : {}),
    ...(a[ANNOTATION.host] ? { host: a[ANNOTATION.host] } : {}),
    ...(Number.isInteger(pid) && pid > 0 ? { pid } : {}),
    ...(a[ANNOTATION.machine] ? { machine: a[ANNOTATION.machine] } : {}),
    ...(a[ANNOTATION.startedAt] ? { startedAt: a[ANNOTATION.startedAt] } : {}),
  };
}

/** "run started by alice@gpu-box (pid 4242) at 2025-05-01T10:00:00Z" */
export function describeHolder(lease: Lease): string {
  const h = holderOf(lease);
  const who = h.user || h.host ? `${h.user ?? '?'}@${h.host ?? '?'}${h.pid ? ` (pid ${h.pid})` : ''}` : (h.identity ?? 'another run');
  return `run started by ${who}${h.startedAt ? ` at ${h.startedAt}` : ''}`;
}

/**
 * Identities of the locks runs of this process hold now. A lock naming this process that is not
 * among them was left by an earlier run of it that could not give it back (the API was gone).
 */
const heldHere = new Set<string>();

/** Why a held lock may be taken over, or undefined while its holder is alive. */
function staleReason(lease: Lease, me: HolderInfo, nowMs: number, observed: { renewTime?: string | undefined; since: number }): string | undefined {
  const spec = lease.spec ?? {};
  if (!spec.holderIdentity) return 'released';
  if (spec.holderIdentity.startsWith(`${me.user}@${me.host}/${me.pid}/`) && !heldHere.has(spec.holderIdentity)) return 'an earlier run of this process that has ended';
  const durationMs = (spec.leaseDurationSeconds ?? 30) * 1000;
  const renewed = Date.parse(spec.renewTime ?? spec.acquireTime ?? '');
  if (Number.isFinite(renewed) && nowMs - renewed > durationMs) return `not renewed for ${formatSeconds(nowMs - renewed)}`;
  // Clocks of two machines may disagree: also count how long this process saw no renewal.
  if (observed.renewTime === spec.renewTime && nowMs - observed.since > durationMs) return `not renewed for ${formatSeconds(nowMs - observed.since)}`;
  const holder = holderOf(lease);
  if (holder.machine === me.machine && holder.pid && holder.pid !== me.pid && !processAlive(holder.pid)) return `its process ${holder.pid} on this machine is gone`;
  return undefined;
}


/** How long the holder of `lease` has held it, by its acquireTime (else since this run first saw it). */
function heldForMs(lease: Lease, nowMs: number, firstSeen: number): number {
  const acquired = Date.parse(lease.spec?.acquireTime ?? '');
  // Another machine's clock may run ahead: never a negative time.
  return Math.max(0, Number.isFinite(acquired) ? nowMs - acquired : nowMs - firstSeen);
}

export interface RunLock {
  /** This run holds the lock (or runs without one): it may create and delete the pipeline's objects. */
  readonly held: boolean;
  /** While another run holds the lock: "run started by alice@gpu-box (pid 4242) at …". */
  readonly heldBy: string | undefined;
  /** Calls `listener` once this run holds the lock (at once if it does). */
  onHeld(listener: () => void): void;
  /**
   * Renews the Lease until `release` (once it is this run's); `onLost` when another run took it
   * over, when renewal gave up, or when the API stayed out of reach while this run waited for it.
   */
  keep(onLost: (why: string, error?: ApiOutageError) => void): void;
  /** Gives the Lease up (best effort, within `timeoutMs`; 0: stops renewing and leaves it to expire), or stops waiting for it. */
  release(timeoutMs: number): Promise<void>;
}

/** For runs without a lock (`lock: false`, or a Role that does not allow one). */
export const NO_LOCK: RunLock = { held: true, heldBy: undefined, onHeld: (listener) => listener(), keep() {}, release: async () => undefined };

/**
 * Takes the run lock of `pipeline` in `namespace`: a coordination.k8s.io Lease naming this
 * process as holder. A holder that stopped renewing, or whose process on this machine is gone,
 * is taken over. Held by a live run: fails at once naming it (`whenHeld: 'fail'`), or returns a
 * lock this run does not hold yet, which it takes as soon as that run ends (`held` turns true,
 * `onHeld` listeners are called), noting every `waitNoteMs` who holds it and for how long.
 */
export async function acquireRunLock(
  client: KubeClient,
  namespace: string,
  pipeline: string,
  options: RunLockOptions,
  note: (message: string) => void,
  signal: AbortSignal,
): Promise<RunLock> {
  const lock = new RunLease(client, namespace, pipeline, options, note, signal);
  try {
    const holder = await lock.tryTake();
    if (holder === undefined) return lock;
    const held = `${describeHolder(holder)} is running ${lock.where}`;
    if (options.whenHeld === 'fail') {
      throw new RunnerError(`${held} (for ${formatSeconds(heldForMs(holder, Date.now(), Date.now()))}); a second run would fight it over the same Jobs`, [
        'drop --no-wait to follow that run and take over what is left when it ends',
        'or stop it: Ctrl-C in its terminal (the Jobs keep running), or `tunepipe cancel` to delete its Jobs',
        `if that run is gone, the lock frees itself ${lock.durationSeconds}s after its last renewal (${holder.spec?.renewTime ?? 'unknown'})`,
      ]);
    }
    lock.follow(holder);
    return lock;
  } catch (error) {
    if (error instanceof RequestAbortedError) throw new RunnerError(`stopped while taking the run lock of ${lock.where}; nothing was started`);
    if (error instanceof ForbiddenKubeError) {
      // A runner Role from before the lock existed: run as before, uncoordinated, and say how to fix it.
      note(`cannot take the run lock (${error.message}); concurrent runs of ${pipeline} are not coordinated: grant the runner's Role get/create/update on leases (coordination.k8s.io), as infra/cluster does`);
      return NO_LOCK;
    }
    throw error;
  }
}

class RunLease implements RunLock {
  readonly name: string;
  readonly where: string;
  readonly durationSeconds: number;
  readonly #me: HolderInfo;
  readonly #identity: string;
  readonly #annotations: Record<string, string>;
  readonly #labels: Record<string, string>;
  /** What this run last saw of the holder's renewals, to tell a stale holder by its own clock. */
  readonly #observed: { renewTime?: string | undefined; since: number } = { since: Date.now() };
  #lease: Lease | undefined;
  #heldBy: Lease | undefined;
  #firstSeen = Date.now();
  #uncoordinated = false;
  #released = false;
  #timer: NodeJS.Timeout | undefined;
  #onLost: ((why: string, error?: ApiOutageError) => void) | undefined;
  /** A failure of the wait that came before `keep` was called. */
  #lostEarly: { why: string; error?: ApiOutageError } | undefined;
  readonly #listeners: (() => void)[] = [];
  /** Ends renewing and waiting: the run's end (release) or its signal. */
  readonly #stop = new AbortController();

  constructor(
    readonly client: KubeClient,
    readonly namespace: string,
    readonly pipeline: string,
    readonly options: RunLockOptions,
    readonly note: (message: string) => void,
    runSignal: AbortSignal,
  ) {
    this.name = runLockName(pipeline);
    this.where = `pipeline ${pipeline} in namespace ${namespace} (Lease ${this.name})`;
    this.durationSeconds = options.durationSeconds ?? 30;
    this.#me = {
      user: currentUser(),
      host: hostname(),
      pid: process.pid,
      machine: machineId(),
      startedAt: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      ...options.holder,
    };
    this.#identity = `${this.#me.user}@${this.#me.host}/${this.#me.pid}/${randomBytes(4).toString('hex')}`;
    this.#annotations = {
      [ANNOTATION.user]: this.#me.user,
      [ANNOTATION.host]: this.#me.host,
      [ANNOTATION.pid]: String(this.#me.pid),
      [ANNOTATION.machine]: this.#me.machine,
      [ANNOTATION.startedAt]: this.#me.startedAt,
    };
    this.#labels = { [LABELS.pipeline]: pipeline, [LABELS.managedBy]: MANAGED_BY, [LABELS.component]: 'run-lock' };
    if (runSignal.aborted) this.#stop.abort();
    else runSignal.addEventListener('abort', () => this.#stop.abort(), { once: true });
  }

  get held(): boolean {
    return this.#lease !== undefined || this.#uncoordinated;
  }

  get heldBy(): string | undefined {
    return this.held || !this.#heldBy ? undefined : describeHolder(this.#heldBy);
  }

  onHeld(listener: () => void): void {
    if (this.held) listener();
    else this.#listeners.push(listener);
  }

  #spec(nowMs: number, transitions: number): NonNullable<Lease['spec']> {
    return {
      holderIdentity: this.#identity,
      leaseDurationSeconds: this.durationSeconds,
      acquireTime: microTime(nowMs),
      renewTime: microTime(nowMs),
      leaseTransitions: transitions,
    };
  }

  /** Takes the lock if it is free or stale; else returns the Lease of the live run holding it. */
  async tryTake(signal?: AbortSignal): Promise<Lease | undefined> {
    const call = signal ? { signal } : {};
    let tookOver = false;
    for (;;) {
      const current = await this.client.readLease(this.namespace, this.name, call);
      const nowMs = Date.now();
      if (!current) {
        try {
          this.#lease = await this.client.createLease(
            this.namespace,
            { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: this.name, namespace: this.namespace, labels: this.#labels, annotations: this.#annotations }, spec: this.#spec(nowMs, 0) },
            call,
          );
          break;
        } catch (error) {
          if (error instanceof KubeError && error.status === 409) continue;
          throw error;
        }
      }
      if (current.spec?.holderIdentity === this.#identity) {
        // Our create (or take-over) went through although its answer was lost.
        this.#lease = current;
        break;
      }
      if (current.spec?.renewTime !== this.#observed.renewTime) {
        this.#observed.renewTime = current.spec?.renewTime;
        this.#observed.since = nowMs;
      }
      const stale = staleReason(current, this.#me, nowMs, this.#observed);
      if (!stale) {
        if (current.spec?.holderIdentity !== this.#heldBy?.spec?.holderIdentity) this.#firstSeen = nowMs;
        this.#heldBy = current;
        return current;
      }
      try {
        this.#lease = await this.client.replaceLease(
          this.namespace,
          {
            ...current,
            metadata: { ...current.metadata, labels: { ...current.metadata?.labels, ...this.#labels }, annotations: { ...current.metadata?.annotations, ...this.#annotations } },
            spec: this.#spec(nowMs, (current.spec?.leaseTransitions ?? 0) + 1),
          },
          call,
        );
      } catch (error) {
        if (error instanceof KubeError && error.status === 409) continue;
        throw error;
      }
      if (stale !== 'released') {
        this.note(`took over the run lock of ${this.where} from the ${describeHolder(current)}: ${stale}`);
        tookOver = true;
      }
      break;
    }
    if (this.#heldBy && !tookOver) this.note(`the ${describeHolder(this.#heldBy)} ended: this run holds the lock of ${this.where} now and goes on with what is left`);
    heldHere.add(this.#identity);
    this.#heldBy = undefined;
    return undefined;
  }

  #heldNote(verb: string): string {
    const lease = this.#heldBy!;
    return `${verb} the ${describeHolder(lease)}, which has held the lock of ${this.where} for ${formatSeconds(heldForMs(lease, Date.now(), this.#firstSeen))}`;
  }

  /** Looks at the lock every `waitPollMs` until this run takes it (or stops), saying every `waitNoteMs` who holds it. */
  follow(holder: Lease): void {
    this.#heldBy = holder;
    this.note(`${this.#heldNote('following')}: watching its stages read-only; this run takes over what is left when it ends (--no-wait stops instead)`);
    const signal = this.#stop.signal;
    const pollMs = this.options.waitPollMs ?? 2000;
    const noteMs = this.options.waitNoteMs ?? 30_000;
    void (async () => {
      let noted = Date.now();
      let complaint = '';
      while (!signal.aborted) {
        await sleep(pollMs, signal);
        if (signal.aborted) return;
        try {
          if ((await this.tryTake(signal)) === undefined) break;
          complaint = '';
        } catch (error) {
          if (signal.aborted || error instanceof RequestAbortedError) return;
          if (error instanceof ApiOutageError) return this.#lose('the run lock could not be read', error);
          if (error instanceof ForbiddenKubeError) {
            // The Role changed under us: no lock to wait for any more; go on uncoordinated.
            this.note(`cannot take the run lock any more (${error.message}); going on uncoordinated`);
            this.#uncoordinated = true;
            break;
          }
          // Anything else is looked at again next time; said once, not every poll.
          const message = error instanceof Error ? error.message : String(error);
          if (message !== complaint) this.note(`could not look at the run lock (${message}); trying again`);
          complaint = message;
        }
        if (Date.now() - noted >= noteMs && this.#heldBy) {
          this.note(this.#heldNote('still following'));
          noted = Date.now();
        }
      }
      if (signal.aborted) return;
      for (const listener of this.#listeners.splice(0)) listener();
      this.#scheduleRenewal();
    })();
  }

  #lose(why: string, error?: ApiOutageError): void {
    if (this.#onLost) this.#onLost(why, error);
    else this.#lostEarly = { why, ...(error ? { error } : {}) };
  }

  keep(onLost: (why: string, error?: ApiOutageError) => void): void {
    this.#onLost = onLost;
    if (this.#lostEarly) return onLost(this.#lostEarly.why, this.#lostEarly.error);
    if (this.#lease) this.#scheduleRenewal();
  }

  #scheduleRenewal(): void {
    if (this.#released || !this.#lease || !this.#onLost) return;
    this.#timer = setTimeout(() => void this.#renew(), this.options.renewMs ?? (this.durationSeconds * 1000) / 3);
  }

  async #renew(): Promise<void> {
    if (this.#released) return;
    const signal = this.#stop.signal;
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          this.#lease = await this.client.replaceLease(this.namespace, { ...this.#lease!, spec: { ...this.#lease!.spec, renewTime: microTime(Date.now()) } }, { signal });
          break;
        } catch (error) {
          if (!(error instanceof KubeError && error.status === 409) || attempt > 3) throw error;
          const current = await this.client.readLease(this.namespace, this.name, { signal });
          if (current?.spec?.holderIdentity !== this.#identity) {
            this.#lose(current ? `the ${describeHolder(current)} took the run lock over` : 'the run lock was deleted');
            return;
          }
          this.#lease = current;
        }
      }
    } catch (error) {
      if (error instanceof RequestAbortedError || signal.aborted) return;
      if (error instanceof ApiOutageError) {
        this.#lose('the run lock could not be renewed', error);
        return;
      }
      // Anything else (a 403 of a changed Role) is tried again next time; the Jobs do not depend on it.
    }
    this.#scheduleRenewal();
  }

  async release(timeoutMs: number): Promise<void> {
    this.#released = true;
    heldHere.delete(this.#identity);
    clearTimeout(this.#timer);
    this.#stop.abort();
    const lease = this.#lease;
    if (timeoutMs <= 0 || !lease) return;
    const { holderIdentity: _, ...spec } = lease.spec ?? {};
    const signal = AbortSignal.timeout(timeoutMs);
    try {
      await this.client.replaceLease(this.namespace, { ...lease, spec: { ...spec, leaseDurationSeconds: 1 } }, { signal, timeoutMs, retry: false });
    } catch (error) {
      if (!(error instanceof KubeError && error.status === 409)) return;
      // Renewed meanwhile by ourselves (a renewal that was in flight): read and release once more.
      const current = await this.client.readLease(this.namespace, this.name, { signal, timeoutMs, retry: false }).catch(() => undefined);
      if (current?.spec?.holderIdentity !== this.#identity) return;
      const { holderIdentity: __, ...rest } = current.spec;
      await this.client.replaceLease(this.namespace, { ...current, spec: { ...rest, leaseDurationSeconds: 1 } }, { signal, timeoutMs, retry: false }).catch(() => undefined);
    }
  }
}

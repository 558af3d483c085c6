import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { LABELS, MANAGED_BY } from '@tunepipe/core/labels';
import { RunnerError } from '../types.ts';
import { ApiOutageError, ForbiddenKubeError, KubeError, RequestAbortedError, formatSeconds, type KubeClient, type Lease } from './kube.ts';
import { sleep } from './watch.ts';

export interface RunLockOptions {
  /** Wait for the run holding the lock to end instead of stopping at once. @default false */
  readonly wait?: boolean;
  /** How long a holder that stopped renewing keeps the lock. @default 30 */
  readonly durationSeconds?: number;
  /** @default a third of the duration */
  readonly renewMs?: number;
  /** How often a waiting run looks at the lock again. @default 2000 */
  readonly waitPollMs?: number;
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

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
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

export interface RunLock {
  /** Renews the Lease until `release`; `onLost` when another run took it over or renewal gave up. */
  keep(onLost: (why: string, error?: ApiOutageError) => void): void;
  /** Gives the Lease up (best effort, within `timeoutMs`; 0: stops renewing and leaves it to expire). */
  release(timeoutMs: number): Promise<void>;
}

/** For runs without a lock (`lock: false`, or a Role that does not allow one). */
export const NO_LOCK: RunLock = { keep() {}, release: async () => undefined };

/**
 * Takes the run lock of `pipeline` in `namespace`: a coordination.k8s.io Lease naming this
 * process as holder. Held by a live run: waits (`wait`) or fails at once naming the holder. A
 * holder that stopped renewing, or whose process on this machine is gone, is taken over.
 */
export async function acquireRunLock(
  client: KubeClient,
  namespace: string,
  pipeline: string,
  options: RunLockOptions,
  note: (message: string) => void,
  signal: AbortSignal,
): Promise<RunLock> {
  const name = runLockName(pipeline);
  const durationSeconds = options.durationSeconds ?? 30;
  const me: HolderInfo = {
    user: currentUser(),
    host: hostname(),
    pid: process.pid,
    machine: machineId(),
    startedAt: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    ...options.holder,
  };
  const identity = `${me.user}@${me.host}/${me.pid}/${randomBytes(4).toString('hex')}`;
  const annotations = {
    [ANNOTATION.user]: me.user,
    [ANNOTATION.host]: me.host,
    [ANNOTATION.pid]: String(me.pid),
    [ANNOTATION.machine]: me.machine,
    [ANNOTATION.startedAt]: me.startedAt,
  };
  const labels = { [LABELS.pipeline]: pipeline, [LABELS.managedBy]: MANAGED_BY, [LABELS.component]: 'run-lock' };
  const spec = (nowMs: number, transitions: number, acquireTime = microTime(nowMs)) => ({
    holderIdentity: identity,
    leaseDurationSeconds: durationSeconds,
    acquireTime,
    renewTime: microTime(nowMs),
    leaseTransitions: transitions,
  });
  const where = `pipeline ${pipeline} in namespace ${namespace} (Lease ${name})`;
  const observed: { renewTime?: string | undefined; since: number } = { since: Date.now() };
  let waitingNoted = false;
  let lease: Lease | undefined;
  try {
    for (;;) {
      const current = await client.readLease(namespace, name);
      const nowMs = Date.now();
      if (!current) {
        try {
          lease = await client.createLease(namespace, {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name, namespace, labels, annotations },
            spec: spec(nowMs, 0),
          });
          break;
        } catch (error) {
          if (error instanceof KubeError && error.status === 409) continue;
          throw error;
        }
      }
      if (current.spec?.holderIdentity === identity) {
        // Our create went through although its answer was lost.
        lease = current;
        break;
      }
      if (current.spec?.renewTime !== observed.renewTime) {
        observed.renewTime = current.spec?.renewTime;
        observed.since = nowMs;
      }
      const stale = staleReason(current, me, nowMs, observed);
      if (stale) {
        try {
          lease = await client.replaceLease(namespace, {
            ...current,
            metadata: { ...current.metadata, labels: { ...current.metadata?.labels, ...labels }, annotations: { ...current.metadata?.annotations, ...annotations } },
            spec: spec(nowMs, (current.spec?.leaseTransitions ?? 0) + 1),
          });
        } catch (error) {
          if (error instanceof KubeError && error.status === 409) continue;
          throw error;
        }
        if (stale !== 'released') note(`took over the run lock of ${where} from the ${describeHolder(current)}: ${stale}`);
        break;
      }
      const held = `${describeHolder(current)} is running ${where}`;
      if (!options.wait) {
        throw new RunnerError(`${held}; a second run would fight it over the same Jobs`, [
          'pass --wait-lock to start when it ends',
          'or stop it: Ctrl-C in its terminal (the Jobs keep running), or `tunepipe cancel` to delete its Jobs',
          `if that run is gone, the lock frees itself ${durationSeconds}s after its last renewal (${current.spec?.renewTime ?? 'unknown'})`,
        ]);
      }
      if (!waitingNoted) {
        note(`waiting for the ${describeHolder(current)} to end (--wait-lock)`);
        waitingNoted = true;
      }
      await sleep(options.waitPollMs ?? 2000, signal);
      if (signal.aborted) throw new RunnerError(`stopped while waiting for the ${describeHolder(current)}; nothing was started`);
    }
  } catch (error) {
    if (error instanceof RequestAbortedError) throw new RunnerError(`stopped while taking the run lock of ${where}; nothing was started`);
    if (error instanceof ForbiddenKubeError) {
      // A runner Role from before the lock existed: run as before, uncoordinated, and say how to fix it.
      note(`cannot take the run lock (${error.message}); concurrent runs of ${pipeline} are not coordinated: grant the runner's Role get/create/update on leases (coordination.k8s.io), as infra/cluster does`);
      return NO_LOCK;
    }
    throw error;
  }
  heldHere.add(identity);
  return new HeldLock(client, namespace, lease!, identity, options.renewMs ?? (durationSeconds * 1000) / 3, signal);
}

class HeldLock implements RunLock {
  #lease: Lease;
  #timer: NodeJS.Timeout | undefined;
  #released = false;
  readonly #renewing = new AbortController();

  constructor(
    readonly client: KubeClient,
    readonly namespace: string,
    lease: Lease,
    readonly identity: string,
    readonly renewMs: number,
    runSignal: AbortSignal,
  ) {
    this.#lease = lease;
    runSignal.addEventListener('abort', () => this.#renewing.abort(), { once: true });
  }

  keep(onLost: (why: string, error?: ApiOutageError) => void): void {
    const renew = async () => {
      if (this.#released) return;
      const signal = this.#renewing.signal;
      try {
        for (let attempt = 0; ; attempt++) {
          try {
            this.#lease = await this.client.replaceLease(this.namespace, { ...this.#lease, spec: { ...this.#lease.spec, renewTime: microTime(Date.now()) } }, { signal });
            break;
          } catch (error) {
            if (!(error instanceof KubeError && error.status === 409) || attempt > 3) throw error;
            const current = await this.client.readLease(this.namespace, this.#lease.metadata?.name ?? '', { signal });
            if (current?.spec?.holderIdentity !== this.identity) {
              onLost(current ? `the ${describeHolder(current)} took the run lock over` : 'the run lock was deleted');
              return;
            }
            this.#lease = current;
          }
        }
      } catch (error) {
        if (error instanceof RequestAbortedError || signal.aborted) return;
        if (error instanceof ApiOutageError) {
          onLost('the run lock could not be renewed', error);
          return;
        }
        // Anything else (a 403 of a changed Role) is tried again next time; the Jobs do not depend on it.
      }
      if (!this.#released) this.#timer = setTimeout(() => void renew(), this.renewMs);
    };
    this.#timer = setTimeout(() => void renew(), this.renewMs);
  }

  async release(timeoutMs: number): Promise<void> {
    this.#released = true;
    heldHere.delete(this.identity);
    clearTimeout(this.#timer);
    this.#renewing.abort();
    if (timeoutMs <= 0) return;
    const { holderIdentity: _, ...spec } = this.#lease.spec ?? {};
    const signal = AbortSignal.timeout(timeoutMs);
    try {
      await this.client.replaceLease(this.namespace, { ...this.#lease, spec: { ...spec, leaseDurationSeconds: 1 } }, { signal, timeoutMs, retry: false });
    } catch (error) {
      if (!(error instanceof KubeError && error.status === 409)) return;
      // Renewed meanwhile by ourselves (a renewal that was in flight): read and release once more.
      const current = await this.client.readLease(this.namespace, this.#lease.metadata?.name ?? '', { signal, timeoutMs, retry: false }).catch(() => undefined);
      if (current?.spec?.holderIdentity !== this.identity) return;
      const { holderIdentity: __, ...rest } = current.spec;
      await this.client.replaceLease(this.namespace, { ...current, spec: { ...rest, leaseDurationSeconds: 1 } }, { signal, timeoutMs, retry: false }).catch(() => undefined);
    }
  }
}

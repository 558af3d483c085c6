import { didYouMean } from '../issues.ts';
import { LABELS } from '../labels.ts';
import { GPUS, gpuById, instanceFor, offeredOn, type Cloud, type GpuSpec } from './gpus.ts';
import type { PlannerIssue } from './types.ts';
import { GiB, formatGiB } from './units.ts';

/** Whether a stage fits `count` GPUs of one type. */
export interface FitResult {
  /** The estimate fits what the stage may use (its band aside: see isTightFit). */
  readonly fits: boolean;
  /** What the stage needs per GPU (the estimate). */
  readonly requiredBytes: number;
  /** How far `requiredBytes` may be off: the estimate's error band, kept free as headroom. */
  readonly bandBytes: number;
  /** What it may use per GPU: the GPU's memory (less any extra headroom), or vLLM's budget. */
  readonly usableBytes: number;
  /** Set when the GPU cannot run the stage at all, whatever its memory (e.g. bf16 on a T4). */
  readonly unsupported?: string;
  /** Why it does not fit, in words, when it does not. */
  readonly reason?: string;
}

export interface PlacementRequest {
  /** Path of the stage in the pipeline definition, e.g. `stages.sft`. */
  readonly path: string;
  readonly cloud: Cloud;
  readonly gpuType?: string | undefined;
  readonly gpus?: number | undefined;
  /** GPU counts to try when the user gave none, in order of preference. */
  readonly counts: readonly number[];
  readonly fit: (gpu: GpuSpec, count: number) => FitResult;
  /** What else the user can change when their choice does not fit (stage-specific). */
  readonly fixHint?: string;
  /** GPUs automatic placement may choose (an explicit choice is checked by `fit` alone). @default all */
  readonly autoEligible?: (gpu: GpuSpec) => boolean;
}

export interface Placement {
  readonly gpu: GpuSpec | undefined;
  readonly gpus: number;
  /** `explicit` when the user named the GPU type (a count alone leaves the type to the planner). */
  readonly source: 'auto' | 'explicit';
  readonly fit: FitResult | undefined;
  /** `{ 'tunepipe.dev/gpu': <id> }` for the pod's nodeSelector. */
  readonly nodeSelector: Readonly<Record<string, string>>;
  readonly issues: readonly PlannerIssue[];
}

/** Memory rounded to 4 GiB, so A10G/L4 and A100-80GB/H100 count as the same size. */
const memoryClass = (g: GpuSpec) => Math.round(g.memoryBytes / GiB / 4);

/**
 * Candidate order: "smallest" first, by memory class then by price on the cloud, so ties go to
 * the cheaper card.
 */
export function gpuOrder(cloud: Cloud): GpuSpec[] {
  const priceOf = (g: GpuSpec) => g.prices[cloud]?.usdPerGpuHour ?? Number.POSITIVE_INFINITY;
  return [...GPUS].sort((a, b) => memoryClass(a) - memoryClass(b) || priceOf(a) - priceOf(b) || a.id.localeCompare(b.id));
}

const selector = (gpu: GpuSpec | undefined): Record<string, string> => (gpu ? { [LABELS.gpuType]: gpu.id } : {});

/**
 * The first (gpu, count) in preference order that is offered on the cloud and fits with its error
 * band to spare (the band is the headroom). GPUs whose
 * smallest machine carries more GPUs than the stage uses (AWS sells A100s only as 8-GPU p4d/p4de
 * nodes) are tried only after every other GPU: one stage would pay for a whole node.
 */
export function autoPlace(
  cloud: Cloud,
  counts: readonly number[],
  fit: PlacementRequest['fit'],
  eligible: (gpu: GpuSpec) => boolean = () => true,
  candidates: readonly GpuSpec[] = gpuOrder(cloud),
): { gpu: GpuSpec; gpus: number; fit: FitResult } | undefined {
  const wholeNode = (gpu: GpuSpec, count: number) => (instanceFor(gpu, cloud, count)?.gpus ?? Number.POSITIVE_INFINITY) <= count;
  for (const pass of ['exact-node', 'any-node'] as const) {
    for (const count of counts) {
      for (const gpu of candidates) {
        if (!eligible(gpu) || !offeredOn(gpu, cloud, count)) continue;
        if (pass === 'exact-node' && !wholeNode(gpu, count)) continue;
        const result = fit(gpu, count);
        if (result.fits && result.unsupported === undefined && !isTightFit(result)) return { gpu, gpus: count, fit: result };
      }
    }
  }
  return undefined;
}

/**
 * Whether the estimate fits but its error band does not: were the estimate low by its band, the
 * stage would no longer fit in what the GPU may use. Automatic placement never picks such a GPU;
 * an explicit choice of one gets a `planner.tight-fit` warning.
 */
export function isTightFit(fit: FitResult): boolean {
  return fit.fits && fit.unsupported === undefined && fit.requiredBytes + fit.bandBytes > fit.usableBytes;
}

/**
 * The warning for a choice that fits by less than its error band, naming the next GPU up: the
 * first larger memory class that fits with the band to spare.
 */
function tightFitIssue(req: PlacementRequest, gpu: GpuSpec, count: number, fit: FitResult, path: string): PlannerIssue | undefined {
  if (!isTightFit(fit)) return undefined;
  const larger = gpuOrder(req.cloud).filter((g) => memoryClass(g) > memoryClass(gpu));
  const next = autoPlace(req.cloud, [count], req.fit, req.autoEligible ?? (() => true), larger);
  const value = count > 1 ? `${count}× ${gpu.id}` : gpu.id;
  const nextName = next ? `gpuType '${next.gpu.id}' (${formatGiB(next.gpu.memoryBytes, 1)}${count > 1 ? ` × ${count}` : ''})` : undefined;
  return {
    code: 'planner.tight-fit',
    path,
    value,
    severity: 'warning',
    message: `fits, but not with its error band to spare: needs ${(fit.requiredBytes / GiB).toFixed(2)} ± ${(fit.bandBytes / GiB).toFixed(2)} of ${formatGiB(fit.usableBytes)} per GPU`,
    fix: nextName
      ? `if it runs out of memory, the next GPU up is ${nextName}${req.fixHint ? `; or ${req.fixHint}` : ''}`
      : `no larger GPU on ${req.cloud} fits${req.fixHint ? `; ${req.fixHint}` : ''}`,
  };
}

function describe(fit: FitResult): string {
  if (fit.unsupported) return fit.unsupported;
  return fit.reason ?? `needs ${formatGiB(fit.requiredBytes)} ± ${formatGiB(fit.bandBytes)} per GPU, ${formatGiB(fit.usableBytes)} usable`;
}

/**
 * Picks the smallest GPU (and count) that fits, or checks the user's explicit choice. An explicit
 * choice that cannot work is an issue (path, value, fix) — the placement is still returned, so the
 * plan shows what was asked for and why it fails.
 */
export function place(req: PlacementRequest): Placement {
  const issues: PlannerIssue[] = [];
  const typePath = `${req.path}.resources.gpuType`;
  const countPath = `${req.path}.resources.gpus`;
  const auto = () => autoPlace(req.cloud, req.gpus !== undefined ? [req.gpus] : req.counts, req.fit, req.autoEligible);
  const autoFix = (prefix: string) => {
    const a = auto();
    const hint = req.fixHint ? `; or ${req.fixHint}` : '';
    return a ? `${prefix}use gpuType '${a.gpu.id}'${a.gpus > 1 ? ` with gpus: ${a.gpus}` : ''} (smallest that fits)${hint}` : `${prefix}${req.fixHint ?? 'no GPU in the catalogue fits; reduce the model or its settings'}`;
  };

  if (req.gpus !== undefined && !(Number.isInteger(req.gpus) && req.gpus >= 1)) {
    issues.push({ code: 'planner.gpus', path: countPath, value: req.gpus, message: 'must be a whole number of GPUs, at least 1', fix: 'use 1, 2, 4 or 8' });
    return { gpu: undefined, gpus: 0, source: 'explicit', fit: undefined, nodeSelector: {}, issues };
  }

  let explicit: GpuSpec | undefined;
  if (req.gpuType !== undefined) {
    explicit = gpuById(req.gpuType);
    if (!explicit) {
      const ids = GPUS.map((g) => g.id);
      const prefixed = ids.filter((id) => id.startsWith(req.gpuType!.toLowerCase()));
      const fix = prefixed.length > 0 ? `did you mean ${prefixed.map((id) => `'${id}'`).join(' or ')}?` : didYouMean(req.gpuType, ids);
      issues.push({ code: 'planner.gpu-type', path: typePath, value: req.gpuType, message: 'is not a GPU in the catalogue', fix: fix ?? `use one of ${ids.join(', ')}` });
    }
  }

  if (explicit) {
    // An explicit type without a count gets the fewest GPUs of that type that fit.
    const fitsWith = (withBand: boolean) => (c: number) => {
      const f = req.fit(explicit as GpuSpec, c);
      return offeredOn(explicit as GpuSpec, req.cloud, c) && f.fits && f.unsupported === undefined && !(withBand && isTightFit(f));
    };
    const count = req.gpus ?? req.counts.find(fitsWith(true)) ?? req.counts.find(fitsWith(false)) ?? req.counts[0] ?? 1;
    if (!offeredOn(explicit, req.cloud)) {
      const offered = GPUS.filter((g) => offeredOn(g, req.cloud)).map((g) => g.id);
      issues.push({ code: 'planner.not-offered', path: typePath, value: explicit.id, message: `${req.cloud} has no machine type with ${explicit.name} GPUs`, fix: `use one of ${offered.join(', ')}` });
    } else if (!offeredOn(explicit, req.cloud, count)) {
      const most = Math.max(...explicit.instances[req.cloud].map((o) => o.gpus));
      issues.push({ code: 'planner.not-offered', path: countPath, value: count, message: `no ${req.cloud} machine type has ${count} ${explicit.id} GPUs on one node (at most ${most})`, fix: `use at most ${most} GPUs, or a GPU type with more per node` });
    }
    const fit = req.fit(explicit, count);
    if (fit.unsupported !== undefined || !fit.fits) {
      issues.push({
        code: fit.unsupported !== undefined ? 'planner.unsupported-gpu' : 'planner.does-not-fit',
        path: typePath,
        value: count > 1 ? `${count}× ${explicit.id}` : explicit.id,
        message: fit.unsupported ?? `does not fit: ${describe(fit)}`,
        fix: autoFix(''),
      });
    }
    const tight = tightFitIssue(req, explicit, count, fit, typePath);
    if (tight) issues.push(tight);
    return { gpu: explicit, gpus: count, source: 'explicit', fit, nodeSelector: selector(explicit), issues };
  }

  const chosen = auto();
  if (!chosen) {
    const largest = gpuOrder(req.cloud).filter((g) => offeredOn(g, req.cloud)).at(-1);
    const count = req.gpus ?? req.counts.at(-1) ?? 1;
    const fit = largest ? req.fit(largest, count) : undefined;
    issues.push({
      code: 'planner.no-gpu-fits',
      path: req.gpus !== undefined ? countPath : req.path,
      value: req.gpus !== undefined ? req.gpus : undefined,
      message: `no GPU on ${req.cloud} fits this stage${largest && fit ? ` (largest, ${count}× ${largest.id}: ${describe(fit)})` : ''}`,
      fix: req.fixHint ?? 'reduce the batch, the sequence length or the model',
    });
    return { gpu: undefined, gpus: 0, source: 'auto', fit, nodeSelector: {}, issues };
  }
  const tight = tightFitIssue(req, chosen.gpu, chosen.gpus, chosen.fit, req.path);
  if (tight) issues.push(tight);
  return { gpu: chosen.gpu, gpus: chosen.gpus, source: 'auto', fit: chosen.fit, nodeSelector: selector(chosen.gpu), issues };
}

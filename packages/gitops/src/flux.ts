import { LABELS, MANAGED_BY, renderManifests, toYaml, type CompiledPipeline, type CompiledStage, type Issue, type KubeObject } from '@tunepipe/core';
import { assertRenderable, GitopsError, isBatch, sharedObjects, type GitopsFile } from './pipeline.ts';
import { normalizeRepoPath, sourceIssues, type FluxSettings } from './options.ts';

export const FLUX_PRUNE_ANNOTATION = 'kustomize.toolkit.fluxcd.io/prune';
/**
 * On Jobs: a Job's pod template is immutable, so when a tunepipe upgrade changes the pod spec of a
 * stage whose hash (and so name) stays, kustomize-controller's apply fails ("field is immutable").
 * With `force: enabled` it deletes and re-creates that Job instead; a complete stage's new pod exits
 * at once (its completion marker exists).
 */
export const FLUX_FORCE_ANNOTATION = 'kustomize.toolkit.fluxcd.io/force';
export const FLUX_DIR = 'flux';
export const FLUX_STAGES_DIR = 'stages';
/** Folder and Kustomization suffix of objects that belong to no stage. */
export const FLUX_SHARED = 'shared';

/** Head room on a stage's expected run time: scheduling, image pulls, Kueue admission. */
const TIMEOUT_FACTOR = 1.5;
const TIMEOUT_SLACK_SECONDS = 600;
const MIN_TIMEOUT_SECONDS = 300;

/** `1h30m`, `45m`: the Go duration Flux expects. */
export function goDuration(seconds: number): string {
  const minutes = Math.ceil(seconds / 60);
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  return h > 0 ? `${h}h${m > 0 ? `${m}m` : ''}` : `${m}m`;
}

/**
 * Flux health-check timeout of a stage: 1.5 × its expected run time plus 10 minutes, at least 5.
 * A timeout does not stop the Job: the stage's Kustomization turns not-Ready and is checked again
 * after `retryInterval`, so a slow stage delays its dependents instead of failing the pipeline.
 */
export function fluxTimeoutSeconds(expectedSeconds: number): number {
  return Math.max(MIN_TIMEOUT_SECONDS, Math.ceil(expectedSeconds * TIMEOUT_FACTOR) + TIMEOUT_SLACK_SECONDS);
}

/** Git URL in the form Flux's source-controller accepts: scp-like SSH addresses become ssh:// URLs. */
export function fluxGitUrl(url: string): string {
  const scp = /^([\w.-]+)@([\w.-]+):(?!\/\/)(.+)$/.exec(url);
  return scp ? `ssh://${scp[1]}@${scp[2]}/${scp[3]!.replace(/^\/+/, '')}` : url;
}

/**
 * Issues of a repo URL that are fine for Git but not for Flux: source-controller's GitRepository
 * CRD admits only http://, https:// and ssh:// URLs (`spec.url` pattern `^(http|https|ssh)://.*$`),
 * so a `git://` or `file://` URL would render fine and be rejected by the API server on apply.
 */
export function fluxSourceIssues(repoUrl: string): Issue[] {
  if (/^(https?|ssh):\/\//.test(fluxGitUrl(repoUrl))) return [];
  const scheme = /^([a-z][a-z+.-]*):\/\//i.exec(repoUrl)?.[1];
  if (!scheme) return []; // not a Git URL at all: sourceIssues already says so
  return [
    {
      code: 'gitops.flux-url-scheme',
      path: 'repoUrl',
      value: repoUrl,
      message: `Flux's GitRepository accepts only http://, https:// and ssh:// URLs, not ${scheme}://`,
      fix: 'serve the repository over https:// (or ssh://git@host/org/repo.git) for the reconciler to clone',
    },
  ];
}

export function fluxRef(revision: string): Record<string, string> {
  if (/^[0-9a-f]{40}$/.test(revision)) return { commit: revision };
  if (revision.startsWith('refs/tags/')) return { tag: revision.slice('refs/tags/'.length) };
  if (revision.startsWith('refs/heads/')) return { branch: revision.slice('refs/heads/'.length) };
  if (revision.startsWith('refs/')) return { name: revision };
  return { branch: revision };
}

export const fluxKustomizationName = (pipeline: string, stage: string): string => `${pipeline}-${stage}`;
export const fluxSourceName = (pipeline: string): string => `tunepipe-${pipeline}`;

function recreateIfImmutable(object: KubeObject): KubeObject {
  // A Job's pod template is immutable, and so is a JobSet's replicated Jobs.
  if (object.kind !== 'Job' && object.kind !== 'JobSet') return object;
  const copy = structuredClone(object);
  copy.metadata = { ...copy.metadata, annotations: { ...copy.metadata?.annotations, [FLUX_FORCE_ANNOTATION]: 'enabled' } };
  return copy;
}

function protect(object: KubeObject): KubeObject {
  const copy = structuredClone(object);
  copy.metadata = { ...copy.metadata, annotations: { ...copy.metadata?.annotations, [FLUX_PRUNE_ANNOTATION]: 'Disabled' } };
  return copy;
}

interface Unit {
  readonly name: string;
  readonly dir: string;
  readonly objects: readonly KubeObject[];
  readonly dependsOn: readonly string[];
  readonly expectedSeconds: number;
  readonly stage?: CompiledStage;
}

function units(compiled: CompiledPipeline): Unit[] {
  const shared = sharedObjects(compiled);
  const out: Unit[] = [];
  if (shared.length > 0) {
    if (compiled.stages.some((s) => s.name === FLUX_SHARED)) {
      throw new GitopsError(`Flux output of pipeline ${compiled.pipeline}`, [
        { code: 'gitops.flux-shared-name', path: `${compiled.pipeline}.stages`, value: FLUX_SHARED, message: `a stage named '${FLUX_SHARED}' collides with the Kustomization of the objects that belong to no stage`, fix: 'rename the stage' },
      ]);
    }
    out.push({
      name: FLUX_SHARED,
      dir: FLUX_SHARED,
      objects: shared.map((o) => (o.kind === 'PersistentVolumeClaim' ? protect(o) : o)),
      dependsOn: [],
      expectedSeconds: 0,
    });
  }
  for (const stage of compiled.stages) {
    out.push({
      name: stage.name,
      dir: stage.name,
      // A running Job and the ConfigMaps its retried pods mount must not be pruned under it.
      objects: (isBatch(stage) ? stage.objects.map(protect) : stage.objects).map(recreateIfImmutable),
      dependsOn: [...(shared.length > 0 ? [FLUX_SHARED] : []), ...stage.dependsOn],
      expectedSeconds: stage.expectedSeconds,
      stage,
    });
  }
  return out;
}

function kustomizationManifest(compiled: CompiledPipeline, unit: Unit, options: FluxSettings) {
  const base = normalizeRepoPath(options.path);
  return {
    apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
    kind: 'Kustomization',
    metadata: {
      name: fluxKustomizationName(compiled.pipeline, unit.name),
      namespace: options.fluxNamespace ?? 'flux-system',
      labels: {
        [LABELS.managedBy]: MANAGED_BY,
        [LABELS.pipeline]: compiled.pipeline,
        ...(unit.stage ? { [LABELS.stage]: unit.stage.name, [LABELS.stageHash]: unit.stage.hash.slice(0, 8) } : {}),
      },
    },
    spec: {
      ...(unit.dependsOn.length > 0
        ? { dependsOn: unit.dependsOn.map((d) => ({ name: fluxKustomizationName(compiled.pipeline, d) })) }
        : {}),
      interval: options.interval ?? '10m',
      retryInterval: '2m',
      timeout: goDuration(fluxTimeoutSeconds(unit.expectedSeconds)),
      path: `./${base}/${FLUX_STAGES_DIR}/${unit.dir}`,
      // Objects that leave Git go, except the protected ones (annotated prune: Disabled).
      prune: true,
      // Dependents start only when this stage's Jobs completed and its Deployments are ready, with
      // one exception: Flux >= 2.8 counts a Job that Kueue still holds (spec.suspend) as ready, so
      // a queued GPU stage releases its dependents early; their pods then wait in-pod for the
      // inputs' completion markers (README, "Flux and Kueue"; test/real/gitops/flux.test.ts).
      wait: true,
      sourceRef: { kind: 'GitRepository', name: fluxSourceName(compiled.pipeline) },
    },
  };
}

function gitRepositoryManifest(compiled: CompiledPipeline, options: FluxSettings) {
  return {
    apiVersion: 'source.toolkit.fluxcd.io/v1',
    kind: 'GitRepository',
    metadata: {
      name: fluxSourceName(compiled.pipeline),
      namespace: options.fluxNamespace ?? 'flux-system',
      labels: { [LABELS.managedBy]: MANAGED_BY, [LABELS.pipeline]: compiled.pipeline },
    },
    spec: {
      interval: '1m',
      url: fluxGitUrl(options.repoUrl),
      ref: fluxRef(options.revision),
      ...(options.secretName ? { secretRef: { name: options.secretName } } : {}),
    },
  };
}

/**
 * Flux output: `stages/<stage>/` holds each stage's objects (plus kustomization.yaml); `flux/`
 * holds the GitRepository and one Kustomization per stage whose `dependsOn` is the stage graph,
 * with a kustomization.yaml listing them, for a Flux Kustomization (or `kubectl apply -k`) to apply.
 */
export function renderFlux(compiled: CompiledPipeline, options: FluxSettings): GitopsFile[] {
  assertRenderable(compiled);
  const sourceProblems = [...sourceIssues(options, { interval: options.interval }), ...fluxSourceIssues(options.repoUrl)];
  if (sourceProblems.length > 0) throw new GitopsError(`Flux output of pipeline ${compiled.pipeline}`, sourceProblems);
  const files: GitopsFile[] = [];
  const entry: string[] = ['gitrepository.yaml'];
  files.push({ path: `${FLUX_DIR}/gitrepository.yaml`, content: toYaml(gitRepositoryManifest(compiled, options)) });
  for (const unit of units(compiled)) {
    for (const f of renderManifests({ ...compiled, objects: unit.objects })) {
      files.push({ path: `${FLUX_STAGES_DIR}/${unit.dir}/${f.path}`, content: f.content });
    }
    const file = `kustomization-${unit.name}.yaml`;
    entry.push(file);
    files.push({ path: `${FLUX_DIR}/${file}`, content: toYaml(kustomizationManifest(compiled, unit, options)) });
  }
  files.push({
    path: `${FLUX_DIR}/kustomization.yaml`,
    content: toYaml({ apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', resources: entry }),
  });
  return files;
}

import { LABELS, MANAGED_BY, renderManifests, toYaml, type CompiledPipeline, type KubeObject } from '@tunepipe/core';
import { assertRenderable, isBatch, objectKey, stageDepths, type GitopsFile } from './pipeline.ts';
import { assertSource, normalizeRepoPath, type ArgoCdSettings } from './options.ts';

export const ARGOCD_ANNOTATIONS = {
  syncWave: 'argocd.argoproj.io/sync-wave',
  syncOptions: 'argocd.argoproj.io/sync-options',
  compareOptions: 'argocd.argoproj.io/compare-options',
} as const;

/** Never pruned when they leave Git, never deleted with the Application. */
export const ARGOCD_PROTECTED_SYNC_OPTIONS = 'Prune=false,Delete=false';
/**
 * On Jobs: a Job's pod template is immutable, so when a tunepipe upgrade changes the pod spec of a
 * stage whose hash (and so name) stays, the apply is rejected ("field is immutable"). `Force=true`
 * makes Argo CD's apply delete and re-create the Job when, and only when, its patch is rejected;
 * the re-created Job's wrapper exits at once if the stage is already complete.
 */
export const ARGOCD_JOB_SYNC_OPTIONS = 'Force=true';
/** A protected object left behind after its hash changed does not turn the Application OutOfSync. */
export const ARGOCD_PROTECTED_COMPARE_OPTIONS = 'IgnoreExtraneous';
/** Wave of objects that belong to no stage (a claim, say): before every stage. */
export const SHARED_WAVE = -1;

/** Folder (inside the output folder) the Application's source path points at. */
export const ARGOCD_APP_DIR = 'app';
export const ARGOCD_DIR = 'argocd';

/**
 * Argo CD health check for batch/v1 Jobs (argocd-cm key `resource.customizations.health.batch_Job`).
 * Argo CD's built-in Job check counts any `Suspended` condition as finished, so a Job that Kueue
 * has resumed (condition Suspended=False, still running) reports Healthy and the next sync wave
 * starts before the Job is done. This check reports Healthy only on Complete=True, Degraded on
 * Failed=True, and Progressing otherwise, naming the Kueue queue while the Job waits for admission.
 * Written for Argo CD's Lua 5.1 runtime.
 */
export const ARGOCD_JOB_HEALTH_LUA = `-- tunepipe: a Job is Healthy only once it has completed; queued and running Jobs hold their sync wave.
local hs = { status = "Progressing", message = "" }
local conditions = {}
if obj.status ~= nil and obj.status.conditions ~= nil then
  conditions = obj.status.conditions
end
for _, c in ipairs(conditions) do
  if c.type == "Failed" and c.status == "True" then
    hs.status = "Degraded"
    hs.message = c.message or "Job failed"
    return hs
  end
end
for _, c in ipairs(conditions) do
  if c.type == "Complete" and c.status == "True" then
    hs.status = "Healthy"
    hs.message = c.message or "Job completed"
    return hs
  end
end
if obj.spec ~= nil and obj.spec.suspend == true then
  local queue = nil
  if obj.metadata ~= nil and obj.metadata.labels ~= nil then
    queue = obj.metadata.labels["${LABELS.kueueQueue}"]
  end
  if queue ~= nil then
    hs.message = "waiting for Kueue to admit the Job (LocalQueue " .. queue .. ")"
  else
    hs.message = "Job is suspended"
  end
  return hs
end
local active = 0
if obj.status ~= nil and obj.status.active ~= nil then
  active = obj.status.active
end
hs.message = "Job running (" .. active .. " active)"
return hs
`;

/** Comma-separated option lists (sync-options, compare-options) are merged, keeping every option once. */
const OPTION_LIST_ANNOTATIONS: ReadonlySet<string> = new Set([ARGOCD_ANNOTATIONS.syncOptions, ARGOCD_ANNOTATIONS.compareOptions]);

function mergeOptionLists(existing: string, added: string): string {
  const options: string[] = [];
  for (const option of [...existing.split(','), ...added.split(',')].map((o) => o.trim())) {
    if (option !== '' && !options.includes(option)) options.push(option);
  }
  return options.join(',');
}

/**
 * Adds annotations to a copy of `object`. An option-list annotation the object already carries
 * (the compiler's `ServerSideApply=true` on data ConfigMaps) is merged, not replaced: losing it
 * would make Argo CD apply client-side and copy the whole object into the 256 KiB
 * last-applied-configuration annotation, which a large data ConfigMap does not fit.
 */
function withAnnotations<T extends KubeObject>(object: T, annotations: Record<string, string>): T {
  const copy = structuredClone(object);
  const merged: Record<string, string> = { ...copy.metadata?.annotations };
  for (const [key, value] of Object.entries(annotations)) {
    const existing = merged[key];
    merged[key] = existing !== undefined && OPTION_LIST_ANNOTATIONS.has(key) ? mergeOptionLists(existing, value) : value;
  }
  copy.metadata = { ...copy.metadata, annotations: merged };
  return copy;
}

/**
 * The Argo CD annotations of one object: its wave, protection for artifact-producing or storage
 * objects, and re-creation of Jobs whose immutable pod template changed.
 */
export function argoAnnotations(wave: number, isProtected: boolean, isJob = false): Record<string, string> {
  const syncOptions = [...(isProtected ? [ARGOCD_PROTECTED_SYNC_OPTIONS] : []), ...(isJob ? [ARGOCD_JOB_SYNC_OPTIONS] : [])];
  return {
    [ARGOCD_ANNOTATIONS.syncWave]: String(wave),
    ...(syncOptions.length > 0 ? { [ARGOCD_ANNOTATIONS.syncOptions]: syncOptions.join(',') } : {}),
    ...(isProtected ? { [ARGOCD_ANNOTATIONS.compareOptions]: ARGOCD_PROTECTED_COMPARE_OPTIONS } : {}),
  };
}

/** Sync wave of every stage: its depth in the stage graph. */
export function argoWaves(compiled: CompiledPipeline): Map<string, number> {
  return stageDepths(compiled);
}

function annotatedObjects(compiled: CompiledPipeline): KubeObject[] {
  const waves = argoWaves(compiled);
  const stageOf = new Map(compiled.stages.flatMap((s) => s.objects.map((o) => [objectKey(o), s] as const)));
  return compiled.objects.map((object) => {
    const stage = stageOf.get(objectKey(object));
    // A running Job must keep its ConfigMaps: a retried pod mounts them again.
    const isProtected = object.kind === 'PersistentVolumeClaim' || (stage !== undefined && isBatch(stage));
    return withAnnotations(object, argoAnnotations(stage ? waves.get(stage.name)! : SHARED_WAVE, isProtected, object.kind === 'Job' || object.kind === 'JobSet'));
  });
}

function applicationManifest(compiled: CompiledPipeline, options: ArgoCdSettings) {
  return {
    apiVersion: 'argoproj.io/v1alpha1',
    kind: 'Application',
    metadata: {
      name: compiled.pipeline,
      namespace: options.argocdNamespace ?? 'argocd',
      labels: { [LABELS.managedBy]: MANAGED_BY, [LABELS.pipeline]: compiled.pipeline },
      // Deleting the Application removes the serving Deployment (and its GPUs); protected Jobs and data stay.
      // The path-qualified name (foreground cascade, as the bare legacy name means): the API server
      // warns on finalizer names without a path.
      finalizers: ['resources-finalizer.argocd.argoproj.io/foreground'],
    },
    spec: {
      project: options.project ?? 'default',
      source: {
        repoURL: options.repoUrl,
        targetRevision: options.revision,
        path: `${normalizeRepoPath(options.path)}/${ARGOCD_APP_DIR}`,
      },
      destination: {
        server: options.destinationServer ?? 'https://kubernetes.default.svc',
        namespace: compiled.namespace,
      },
      syncPolicy: {
        // Merging the pull request is the decision to spend the GPU hours it shows.
        automated: { prune: true, selfHeal: true },
        syncOptions: ['RespectIgnoreDifferences=true'],
        // Retries cover failed applies (a webhook or the namespace not ready yet); a failed Job stays failed.
        retry: { limit: 10, backoff: { duration: '30s', factor: 2, maxDuration: '15m' } },
      },
      // Kueue suspends Jobs on creation and resumes them on admission; Argo CD must not undo either.
      ignoreDifferences: [
        { group: 'batch', kind: 'Job', jsonPointers: ['/spec/suspend'] },
        ...(compiled.stages.some((s) => s.workload.kind === 'JobSet') ? [{ group: 'jobset.x-k8s.io', kind: 'JobSet', jsonPointers: ['/spec/suspend'] }] : []),
      ],
    },
  };
}

const SETTINGS_HEADER = `# Argo CD settings the tunepipe Application relies on. Merge this key into the argocd-cm
# ConfigMap of your Argo CD installation once per cluster; it is not part of the Application's path.
# Without it Argo CD counts a Job that Kueue has resumed as Healthy while it still runs, and the
# next sync wave starts too early. See packages/gitops/README.md ("Argo CD and Kueue").
`;

function settingsManifest(options: ArgoCdSettings) {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: 'argocd-cm',
      namespace: options.argocdNamespace ?? 'argocd',
      labels: { 'app.kubernetes.io/name': 'argocd-cm', 'app.kubernetes.io/part-of': 'argocd' },
    },
    data: { 'resource.customizations.health.batch_Job': ARGOCD_JOB_HEALTH_LUA },
  };
}

/**
 * Argo CD output: `app/` (every object with its sync wave, plus kustomization.yaml) is the
 * Application's source path; `argocd/application.yaml` is the Application to apply once (or from
 * an app-of-apps); `argocd/argocd-cm.tunepipe.yaml` is the Job health check to merge into argocd-cm.
 */
export function renderArgoCd(compiled: CompiledPipeline, options: ArgoCdSettings): GitopsFile[] {
  assertRenderable(compiled);
  assertSource(`Argo CD output of pipeline ${compiled.pipeline}`, options);
  const app = renderManifests({ ...compiled, objects: annotatedObjects(compiled) }).map((f) => ({
    path: `${ARGOCD_APP_DIR}/${f.path}`,
    content: f.content,
  }));
  return [
    ...app,
    { path: `${ARGOCD_DIR}/application.yaml`, content: toYaml(applicationManifest(compiled, options)) },
    { path: `${ARGOCD_DIR}/argocd-cm.tunepipe.yaml`, content: SETTINGS_HEADER + toYaml(settingsManifest(options)) },
  ];
}

// The local control plane of the real-tools tier: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, kubectl, kwok and Kueue, each built once from its Go module at the version in
// pins.json `go` and cached under <cache>/<component>/<version>/. `scripts/real/cluster.mjs`
// starts them; nothing here runs them.
//
// Builds run one after another: the machine has 2 cores and `go build` already uses both.
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildGoModule, cacheRoot, ensure, fileSize, goEnv, log, pins, run } from './lib.mjs';

const K8S_BINARIES = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubectl'];

/**
 * Kubernetes' staging modules (k8s.io/api, k8s.io/client-go, …) are published as v0.<minor>.<patch>
 * of the same release; `k8s.io/kubernetes` itself requires them at v0.0.0 and replaces them with
 * ./staging/src folders that its module zip does not contain.
 */
function stagingVersion(kubernetesVersion) {
  const m = /^v1\.(\d+)\.(\d+)$/.exec(kubernetesVersion);
  if (!m) throw new Error(`pins.json go.kubernetes must be v1.<minor>.<patch>, not ${kubernetesVersion}`);
  return `v0.${m[1]}.${m[2]}`;
}

/**
 * `version` of the binaries: without these ldflags kube-apiserver reports v0.0.0-master, and
 * clients (kubectl's skew warning, Kueue's feature gates, the runner's own checks) see a server
 * that claims to be older than any release.
 */
function kubernetesLdflags(version) {
  const [major, minor] = version.slice(1).split('.');
  const vars = {
    gitVersion: version,
    gitMajor: major,
    gitMinor: minor,
    gitTreeState: 'clean',
    buildDate: '1970-01-01T00:00:00Z',
  };
  const flags = [];
  for (const pkg of ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version']) {
    for (const [k, v] of Object.entries(vars)) flags.push(`-X ${pkg}.${k}=${v}`);
  }
  return `-s -w ${flags.join(' ')}`;
}

function buildEtcd() {
  const version = pins.go.etcd;
  const dir = ensure('etcd', version, (out) => {
    buildGoModule({
      name: 'etcd',
      module: 'go.etcd.io/etcd/server/v3',
      version,
      packages: ['.'],
      outDir: join(out, 'bin'),
      ldflags: '-s -w',
      // etcd's server module requires its sibling modules (api, client/pkg, …) at the same version.
      localVersion: (path) => (path.startsWith('go.etcd.io/etcd/') ? version : undefined),
    });
  });
  // The server module's main package is named after the module folder (`v3`/`server`): find it.
  const bin = join(dir, 'bin');
  const name = readdirSync(bin).find((f) => f === 'etcd' || f === 'server' || f === 'v3');
  if (!name) throw new Error(`no etcd binary in ${bin}: ${readdirSync(bin).join(', ')}`);
  return join(bin, name);
}

function buildKubernetes() {
  const version = pins.go.kubernetes;
  const staging = stagingVersion(version);
  const dir = ensure('kubernetes', version, (out) => {
    buildGoModule({
      name: 'kubernetes',
      module: 'k8s.io/kubernetes',
      version,
      packages: K8S_BINARIES.map((b) => `./cmd/${b}`),
      outDir: join(out, 'bin'),
      ldflags: kubernetesLdflags(version),
      localVersion: (path) => (path.startsWith('k8s.io/') ? staging : undefined),
      // The module ships a go.work over its staging folders, which the zip does not contain.
      env: { GOWORK: 'off' },
    });
  });
  return Object.fromEntries(K8S_BINARIES.map((b) => [b, join(dir, 'bin', b)]));
}

/**
 * kwok plus what a local run of it needs from its module: the Stage CRD (stages are applied as
 * objects, so a test can change what fake pods do while kwok runs) and kwok's own node stages
 * (initialise a fake node, then keep its Ready condition and Lease fresh).
 */
function buildKwok() {
  const version = pins.go.kwok;
  const dir = ensure('kwok', version, (out) => {
    const src = buildGoModule({
      name: 'kwok',
      module: 'sigs.k8s.io/kwok',
      version,
      packages: ['./cmd/kwok'],
      outDir: join(out, 'bin'),
      ldflags: `-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${version}`,
    });
    const manifests = join(out, 'manifests');
    mkdirSync(manifests, { recursive: true });
    const copies = {
      'stage-crd.yaml': 'kustomize/crd/bases/kwok.x-k8s.io_stages.yaml',
      'node-initialize.yaml': 'kustomize/stage/node/fast/node-initialize.yaml',
      'node-heartbeat-with-lease.yaml': 'kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml',
    };
    for (const [to, from] of Object.entries(copies)) {
      if (!existsSync(join(src, from))) throw new Error(`kwok ${version}: no ${from} in the module`);
      writeFileSync(join(manifests, to), readFileSync(join(src, from)));
    }
  });
  return {
    binary: join(dir, 'bin', 'kwok'),
    stageCrd: join(dir, 'manifests', 'stage-crd.yaml'),
    nodeStages: [join(dir, 'manifests', 'node-initialize.yaml'), join(dir, 'manifests', 'node-heartbeat-with-lease.yaml')],
  };
}

/**
 * With its own certificate management off (a local process has no Service for it to certify),
 * Kueue's main reads the metrics server certificate from the fixed path /etc/kueue/metrics/certs,
 * which a process outside a container cannot use without writing to /etc. This build-time edit
 * lets KUEUE_METRICS_CERT_DIR name the folder instead; the fixed path stays the default. It fails
 * loudly when the upstream line changes, so a Kueue bump cannot silently drop it.
 */
function configurableMetricsCertDir(src) {
  const main = join(src, 'cmd', 'kueue', 'main.go');
  const text = readFileSync(main, 'utf8');
  const line = 'metricsCertPath := "/etc/kueue/metrics/certs"';
  const count = text.split(line).length - 1;
  if (count !== 1) throw new Error(`kueue: expected one \`${line}\` in cmd/kueue/main.go, found ${count}; update configurableMetricsCertDir`);
  writeFileSync(main, text.replace(line, `${line}\n\t\tif dir := os.Getenv("KUEUE_METRICS_CERT_DIR"); dir != "" {\n\t\t\tmetricsCertPath = dir\n\t\t}`));
}

/**
 * Kueue's manager binary plus the manifests a local process needs: its CRDs (config/components/crd/
 * bases) and its webhook configurations (config/components/webhook/manifests.yaml). Both are copied
 * from the module into the cache, so tests never read the Go module cache directly.
 */
function buildKueue() {
  const version = pins.go.kueue;
  const dir = ensure('kueue', version, (out) => {
    const src = buildGoModule({
      name: 'kueue',
      module: 'sigs.k8s.io/kueue',
      version,
      packages: ['./cmd/kueue'],
      outDir: join(out, 'bin'),
      ldflags: `-s -w -X sigs.k8s.io/kueue/pkg/version.GitVersion=${version}`,
      prepare: configurableMetricsCertDir,
    });
    const crdDir = join(src, 'config', 'components', 'crd', 'bases');
    const webhook = join(src, 'config', 'components', 'webhook', 'manifests.yaml');
    if (!existsSync(crdDir)) throw new Error(`kueue ${version}: no CRDs at config/components/crd/bases in the module`);
    if (!existsSync(webhook)) throw new Error(`kueue ${version}: no config/components/webhook/manifests.yaml in the module`);
    const manifests = join(out, 'manifests');
    mkdirSync(join(manifests, 'crd'), { recursive: true });
    for (const f of readdirSync(crdDir).filter((f) => f.endsWith('.yaml')).sort()) {
      writeFileSync(join(manifests, 'crd', f), readFileSync(join(crdDir, f)));
    }
    writeFileSync(join(manifests, 'webhooks.yaml'), readFileSync(webhook));
  });
  const crds = readdirSync(join(dir, 'manifests', 'crd'))
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => join(dir, 'manifests', 'crd', f));
  return { manager: join(dir, 'bin', 'kueue'), crds, webhooks: join(dir, 'manifests', 'webhooks.yaml') };
}

/**
 * Argo CD's CRDs (Application, AppProject), for the server-side dry-run of `synth --gitops argocd`
 * output. Argo CD itself is too large to build here; its module ships the CRDs under
 * manifests/crds. Only downloaded (no build): a version whose go.mod the local Go accepts.
 */
function argoCdCrds() {
  const version = pins.go['argo-cd'];
  if (!version) throw new Error('pins.json has no go.argo-cd');
  const dir = ensure('argo-cd-crds', version, (out) => {
    const env = goEnv();
    const logFile = join(cacheRoot(), 'logs', `argo-cd-crds-${version}.log`);
    const dl = JSON.parse(run('go', ['mod', 'download', '-json', `github.com/argoproj/argo-cd/v3@${version}`], { env, logFile, cwd: cacheRoot() }).stdout);
    if (dl.Error) throw new Error(`go mod download github.com/argoproj/argo-cd/v3@${version}: ${dl.Error}`);
    for (const f of ['application-crd.yaml', 'appproject-crd.yaml']) {
      const from = join(dl.Dir, 'manifests', 'crds', f);
      if (!existsSync(from)) throw new Error(`argo-cd ${version}: no manifests/crds/${f} in the module`);
      writeFileSync(join(out, f), readFileSync(from));
    }
  });
  return ['application-crd.yaml', 'appproject-crd.yaml'].map((f) => join(dir, f));
}

/**
 * The JobSet CRD, for the server-side dry-run of gangs compiled as JobSets (tunepipe.json
 * multiNode "jobset"). Its version is the one the pinned Kueue's go.mod requires: the JobSet API
 * Kueue's integration is written against. Only the CRD is taken; no JobSet controller runs here.
 */
function jobSetCrd() {
  const env = goEnv();
  const logFile = join(cacheRoot(), 'logs', `jobset-crd.log`);
  const download = (module) => {
    const dl = JSON.parse(run('go', ['mod', 'download', '-json', module], { env, logFile, cwd: cacheRoot() }).stdout);
    if (dl.Error) throw new Error(`go mod download ${module}: ${dl.Error}`);
    return dl;
  };
  const kueueGoMod = readFileSync(download(`sigs.k8s.io/kueue@${pins.go.kueue}`).GoMod, 'utf8');
  const version = /^\s*sigs\.k8s\.io\/jobset (v\S+)/m.exec(kueueGoMod)?.[1];
  if (!version) throw new Error(`kueue ${pins.go.kueue}: its go.mod requires no sigs.k8s.io/jobset`);
  const file = 'jobset.x-k8s.io_jobsets.yaml';
  const dir = ensure('jobset-crd', version, (out) => {
    const from = join(download(`sigs.k8s.io/jobset@${version}`).Dir, 'config', 'components', 'crd', 'bases', file);
    if (!existsSync(from)) throw new Error(`jobset ${version}: no config/components/crd/bases/${file} in the module`);
    writeFileSync(join(out, file), readFileSync(from));
  });
  return { version, crd: join(dir, file) };
}

function timingOf(name, key) {
  try {
    return JSON.parse(readFileSync(join(cacheRoot(), name, key, '.complete'), 'utf8')).seconds;
  } catch {
    return undefined;
  }
}

export async function install() {
  mkdirSync(cacheRoot(), { recursive: true });
  const etcd = buildEtcd();
  const kube = buildKubernetes();
  const kwok = buildKwok();
  const kueue = buildKueue();
  const argoCrds = argoCdCrds();
  const jobSet = jobSetCrd();
  const result = {
    versions: { etcd: pins.go.etcd, kubernetes: pins.go.kubernetes, kwok: pins.go.kwok, kueue: pins.go.kueue, argoCd: pins.go['argo-cd'], jobSet: jobSet.version },
    etcd,
    kubeApiserver: kube['kube-apiserver'],
    kubeControllerManager: kube['kube-controller-manager'],
    kubeScheduler: kube['kube-scheduler'],
    kubectl: kube.kubectl,
    kwok: kwok.binary,
    kwokStageCrd: kwok.stageCrd,
    kwokNodeStages: kwok.nodeStages,
    kueue: kueue.manager,
    kueueCrds: kueue.crds,
    kueueWebhooks: kueue.webhooks,
    argoCdCrds: argoCrds,
    jobSetCrds: [jobSet.crd],
    // Cold build seconds of each component, as measured when it was built (cached afterwards).
    buildSeconds: {
      etcd: timingOf('etcd', pins.go.etcd),
      kubernetes: timingOf('kubernetes', pins.go.kubernetes),
      kwok: timingOf('kwok', pins.go.kwok),
      kueue: timingOf('kueue', pins.go.kueue),
    },
  };
  for (const [k, v] of Object.entries(result)) {
    if (typeof v === 'string' && !existsSync(v)) throw new Error(`controlplane: ${k} missing at ${v}`);
  }
  log(`control plane: apiserver ${(fileSize(result.kubeApiserver) / 1e6).toFixed(0)} MB, kueue ${(fileSize(result.kueue) / 1e6).toFixed(0)} MB`);
  return result;
}

// `node scripts/real/controlplane.mjs` builds just this component (handy while iterating).
if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await install(), null, 2));
}

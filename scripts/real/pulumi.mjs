// The real Pulumi engine of the test:real tier, built from Go modules and cached:
// - the CLI (`github.com/pulumi/pulumi/pkg/v3`, ./cmd/pulumi) at the version of `@pulumi/pulumi` in
//   package-lock.json (pins.json go.pulumi);
// - the Kubernetes provider `pulumi-resource-kubernetes` at the release of `@pulumi/kubernetes` in
//   package-lock.json (pins.json go.pulumi-kubernetes).
//
// The Node.js language host (`pulumi-language-nodejs`) is NOT built: the Go module proxy answers
// 403 "not available" for github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3 at
// every version we tried. It is not needed either: the tests drive the engine through the
// Automation API with inline programs, where @pulumi/pulumi serves the language runtime in the
// test's own process and the CLI connects to it with `--client` (the engine's "client" runtime).
//
// The engine finds the provider as an ambient plugin on PATH (`bin` below), talks to a local file
// backend, and never downloads anything at run time (see `engineEnv`).
import { existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { buildGoModule, ensure, fileSize, log, pins, run } from './lib.mjs';

/** The CLI release; must equal `@pulumi/pulumi` in package-lock.json. */
export const PULUMI_VERSION = pins.go.pulumi;
/** The provider release; must equal `@pulumi/kubernetes` in package-lock.json. */
export const KUBERNETES_PROVIDER_VERSION = pins.go['pulumi-kubernetes'];

/**
 * The provider's module as the Go module proxy serves it. Tagged releases of
 * github.com/pulumi/pulumi-kubernetes/provider/v4 (e.g. v4.34.2) answer 403; the one version the
 * proxy has is a pseudo-version of commit f47bc2d6f199, which is the commit tagged v4.25.0 in the
 * pulumi-kubernetes repository (its CHANGELOG and tag agree). So the provider is 4.25.0, and
 * `@pulumi/kubernetes` is pinned to 4.25.0 to match.
 */
const KUBERNETES_PROVIDER_MODULE = {
  module: 'github.com/pulumi/pulumi-kubernetes/provider/v4',
  'v4.25.0': 'v4.0.0-20260115033456-f47bc2d6f199',
};

/** npm version of a package in the lockfile (the first install location that has it). */
function lockedNpmVersion(name) {
  const lock = JSON.parse(readFileSync(new URL('../../package-lock.json', import.meta.url), 'utf8'));
  const versions = new Set(
    Object.entries(lock.packages ?? {})
      .filter(([path]) => path === `node_modules/${name}` || path.endsWith(`/node_modules/${name}`))
      .map(([, entry]) => entry.version),
  );
  return [...versions];
}

/** The pins and the lockfile must name the same releases, or the SDK talks to a provider it was not generated for. */
function checkLockfileAgrees() {
  const problems = [];
  for (const [pkg, pinKey, pinned] of [
    ['@pulumi/pulumi', 'pulumi', PULUMI_VERSION],
    ['@pulumi/kubernetes', 'pulumi-kubernetes', KUBERNETES_PROVIDER_VERSION],
  ]) {
    const locked = lockedNpmVersion(pkg);
    if (locked.length !== 1 || `v${locked[0]}` !== pinned) {
      problems.push(`package-lock.json has ${pkg} ${locked.join(', ') || '(none)'} but pins.json go.${pinKey} is ${pinned}`);
    }
  }
  if (problems.length > 0) {
    throw new Error(`the Pulumi engine must match the npm SDKs:\n  ${problems.join('\n  ')}\nfix: make pins.json go.pulumi / go.pulumi-kubernetes and the @pulumi/* versions in infra/*/package.json agree, then npm install`);
  }
}

function buildCli() {
  const dir = ensure('pulumi-cli', PULUMI_VERSION, (out) => {
    buildGoModule({
      name: 'pulumi-cli',
      module: 'github.com/pulumi/pulumi/pkg/v3',
      version: PULUMI_VERSION,
      packages: ['./cmd/pulumi'],
      outDir: join(out, 'bin'),
      // Without the version the CLI calls itself v0.0.0 (older than the Automation API's minimum).
      ldflags: `-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=${PULUMI_VERSION}`,
    });
  });
  return join(dir, 'bin', 'pulumi');
}

function buildKubernetesProvider() {
  const version = KUBERNETES_PROVIDER_VERSION;
  const moduleVersion = KUBERNETES_PROVIDER_MODULE[version];
  if (!moduleVersion) {
    throw new Error(`no Go module version known for pulumi-kubernetes ${version}: the proxy serves only ${KUBERNETES_PROVIDER_MODULE['v4.25.0']} (= v4.25.0); see scripts/real/pulumi.mjs`);
  }
  const bare = version.replace(/^v/, '');
  const dir = ensure('pulumi-resource-kubernetes', `${version}-${moduleVersion.slice(-12)}`, (out) => {
    buildGoModule({
      name: 'pulumi-resource-kubernetes',
      module: KUBERNETES_PROVIDER_MODULE.module,
      version: moduleVersion,
      packages: ['./cmd/pulumi-resource-kubernetes'],
      outDir: join(out, 'bin'),
      ldflags: `-s -w -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=${bare}`,
      // The provider replaces its own SDK module with ../sdk (not in the module zip); use the same release's.
      localVersion: (path) => (path === 'github.com/pulumi/pulumi-kubernetes/sdk/v4' ? version : undefined),
      // main.go embeds schema-embed.json and terraform-mapping-embed.json, which the module does not
      // ship: its own build makes them with `VERSION=<v> go generate` (generate.go stamps the
      // version into schema.json and compacts both files). Run exactly that.
      prepare: (src, env, logFile) => {
        run('go', ['generate', './cmd/pulumi-resource-kubernetes'], {
          cwd: src,
          env: { ...env, VERSION: bare, GOFLAGS: `${env.GOFLAGS ?? ''} -mod=mod`.trim() },
          logFile,
        });
        for (const f of ['schema-embed.json', 'terraform-mapping-embed.json']) {
          if (!existsSync(join(src, 'cmd', 'pulumi-resource-kubernetes', f))) throw new Error(`go generate did not write ${f}`);
        }
      },
    });
  });
  return join(dir, 'bin', 'pulumi-resource-kubernetes');
}

/** One folder with the CLI and the provider, for PATH (the engine loads providers found there). */
function linkBin(cli, provider) {
  const key = `${PULUMI_VERSION}-k8s-${KUBERNETES_PROVIDER_VERSION}`;
  const dir = ensure('pulumi-bin', key, (out) => {
    mkdirSync(join(out, 'bin'));
    symlinkSync(cli, join(out, 'bin', 'pulumi'));
    symlinkSync(provider, join(out, 'bin', 'pulumi-resource-kubernetes'));
  });
  return join(dir, 'bin');
}

/**
 * Environment for every engine process: no update check, no plugin downloads, no telemetry, no
 * interactive prompts. `PULUMI_HOME` and the backend URL are per test (temp folders).
 */
export const ENGINE_ENV = {
  PULUMI_SKIP_UPDATE_CHECK: 'true',
  PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: 'true',
  PULUMI_SKIP_CONFIRMATIONS: 'true',
  PULUMI_DIY_BACKEND_NO_LEGACY_WARNING: 'true',
};

export async function install() {
  checkLockfileAgrees();
  const cli = buildCli();
  const provider = buildKubernetesProvider();
  const bin = linkBin(cli, provider);
  const version = run(cli, ['version'], { env: ENGINE_ENV }).stdout.trim();
  if (version !== PULUMI_VERSION) throw new Error(`${cli} reports ${version}, expected ${PULUMI_VERSION}`);
  log(`pulumi ${version} (${(fileSize(cli) / 2 ** 20).toFixed(0)} MiB), pulumi-resource-kubernetes ${KUBERNETES_PROVIDER_VERSION} (${(fileSize(provider) / 2 ** 20).toFixed(0)} MiB)`);
  return {
    pulumi: cli,
    kubernetesProvider: provider,
    /** Put first on PATH: the CLI and the provider (an ambient plugin). */
    bin,
    pulumiVersion: PULUMI_VERSION,
    kubernetesProviderVersion: KUBERNETES_PROVIDER_VERSION,
    /** Not built (see the top of scripts/real/pulumi.mjs); programs run inline through the Automation API. */
    languageHost: { nodejs: null, reason: 'github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3 is not served by the Go module proxy (403); inline Automation-API programs need no language host binary' },
    env: ENGINE_ENV,
  };
}

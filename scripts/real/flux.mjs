// Flux's source-controller and kustomize-controller, built from their Go modules at the versions
// pinned in pins.json (one Flux release: both controllers' minor versions move together), plus the
// CRDs of those exact versions, copied out of the module cache. Tests run the controllers as local
// processes against the local control plane (test/real/gitops/).
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { buildGoModule, cacheRoot, digest, ensure, fileSize, goEnv, log, pins, run } from './lib.mjs';

const CONTROLLERS = [
  { name: 'flux-source-controller', module: 'github.com/fluxcd/source-controller', binary: 'source-controller' },
  { name: 'flux-kustomize-controller', module: 'github.com/fluxcd/kustomize-controller', binary: 'kustomize-controller' },
];

/**
 * The Flux release each pinned pair ships in (fluxcd/flux2 manifests/bases at the release tag).
 * Pinned: v2.9.3. Newer pairs cannot be had here: v2.9.4's source-controller v1.9.4 needs
 * fluxcd/pkg/artifact v0.18.2, which the Go module proxy refuses (403 "not available"), and v2.10
 * (controllers v1.10) needs go1.27.
 */
const FLUX_RELEASES = {
  'v1.9.3 v1.9.4': 'v2.9.3',
  'v1.9.4 v1.9.4': 'v2.9.4',
};

function goVersion() {
  return run('go', ['env', 'GOVERSION'], { env: goEnv() }).stdout.trim();
}

/**
 * Lua 5.1, the language of Argo CD's health scripts (Argo CD itself is too large to build here):
 * Debian's `lua5.1`, installed with apt-get when missing (CI runs as root, like the sessions).
 */
function ensureLua() {
  const which = () => run('sh', ['-c', 'command -v lua5.1'], { allowFail: true }).stdout.trim();
  let lua = which();
  if (!lua) {
    const logFile = join(cacheRoot(), 'logs', 'lua5.1.log');
    if (process.getuid?.() !== 0) throw new Error('lua5.1 is not installed and this is not root: run `apt-get install lua5.1`');
    log('installing lua5.1 (apt-get) …');
    const env = { DEBIAN_FRONTEND: 'noninteractive' };
    run('apt-get', ['update'], { env, logFile });
    run('apt-get', ['install', '-y', '--no-install-recommends', 'lua5.1'], { env, logFile });
    lua = which();
    if (!lua) throw new Error(`apt-get installed lua5.1 but it is not on PATH; see ${logFile}`);
  }
  const version = run(lua, ['-v']).output.trim();
  if (!version.startsWith('Lua 5.1')) throw new Error(`${lua} is ${version}, not Lua 5.1 (Argo CD's Lua)`);
  return { path: lua, version };
}

export async function install() {
  const versions = Object.fromEntries(
    CONTROLLERS.map((c) => {
      const v = pins.go[c.name];
      if (!v) throw new Error(`pins.json has no go.${c.name}; add the version to build`);
      return [c.name, v];
    }),
  );
  const dir = ensure('flux', digest(versions, goVersion()), (tmp) => {
    const bin = join(tmp, 'bin');
    const crds = join(tmp, 'crds');
    mkdirSync(crds, { recursive: true });
    // One build at a time: the machine has 2 cores and the Go build already uses both.
    for (const c of CONTROLLERS) {
      const src = buildGoModule({ name: c.name, module: c.module, version: versions[c.name], packages: ['.'], outDir: bin });
      // The module zip ships config/crd/bases (the api/ folder is a separate module, config/ is not).
      const bases = join(src, 'config', 'crd', 'bases');
      if (!existsSync(bases)) throw new Error(`${c.module}@${versions[c.name]} has no config/crd/bases in its module`);
      for (const f of readdirSync(bases).filter((n) => n.endsWith('.yaml'))) copyFileSync(join(bases, f), join(crds, f));
    }
  });
  const binaries = Object.fromEntries(CONTROLLERS.map((c) => [c.binary, join(dir, 'bin', c.binary)]));
  for (const [name, path] of Object.entries(binaries)) {
    if (fileSize(path) === 0) throw new Error(`flux: ${name} missing at ${path}; delete ${dir} and install again`);
  }
  const lua = ensureLua();
  let buildSeconds;
  try {
    buildSeconds = JSON.parse(readFileSync(join(dir, '.complete'), 'utf8')).seconds;
  } catch {
    buildSeconds = undefined;
  }
  return {
    versions,
    // Flux release these controller versions ship in (fluxcd/flux2 manifests/bases at that tag).
    fluxRelease: FLUX_RELEASES[`${versions['flux-source-controller']} ${versions['flux-kustomize-controller']}`] ?? 'unknown: add the pair to FLUX_RELEASES in scripts/real/flux.mjs',
    buildSeconds,
    sourceController: binaries['source-controller'],
    kustomizeController: binaries['kustomize-controller'],
    crdDir: join(dir, 'crds'),
    crds: readdirSync(join(dir, 'crds')).filter((f) => f.endsWith('.yaml')).sort().map((f) => join(dir, 'crds', f)),
    lua: lua.path,
    luaVersion: lua.version,
  };
}

#!/usr/bin/env node
// Runs the install steps of each image in images/ for real, without a Docker engine: the Dockerfile
// is read (dockerfile-ast, the parser its linting uses), and its ARG/ENV values, COPY instructions
// and RUN commands are carried out in a folder that stands in for the image's file system, with the
// base image replaced by an equivalent local layer (a clean venv of the image's Python, this Node,
// or the tier's LLaMA-Factory venv for the GPTQ and QLoRA images). What runs is what the Dockerfile
// says, so a Dockerfile that cannot install fails here instead of in `docker build` elsewhere.
//
//   node scripts/real/images.mjs [fetch|gptq|qlora|runtime …]   run the steps, print each image's report
//
// What cannot run here is reported, never silently dropped:
// - user and group management (useradd, groupadd, getent) needs root inside the image's /etc;
// - a pip install of a package that compiles CUDA kernels (gptqmodel) needs nvcc matching torch's
//   CUDA: it runs as `pip install --dry-run --report`, which resolves every dependency against the
//   base layer and runs the package's setup script (metadata) with the Dockerfile's environment, and
//   the package is then installed without kernels so the Dockerfile's own import check can run.
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative } from 'node:path';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { cacheRoot, digest, ensure, log, pins, repoRoot, run } from './lib.mjs';

const require = createRequire(import.meta.url);
const { DockerfileParser } = require('dockerfile-ast');

// ---------------------------------------------------------------------------------------------
// Reading a Dockerfile

/** `$NAME` and `${NAME}` expanded from `vars` (Dockerfile and POSIX sh agree on these two forms). */
export function expandVariables(text, vars) {
  return text.replace(/\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))/g, (whole, braced, bare) => {
    const name = braced ?? bare;
    return Object.hasOwn(vars, name) ? vars[name] : whole;
  });
}

/**
 * The stages of a Dockerfile with what each instruction does, ARG defaults applied: `ARG`s before
 * the first FROM expand FROM lines; `ARG`s and `ENV`s inside a stage reach its RUN commands.
 */
export function readDockerfile(text) {
  const dockerfile = DockerfileParser.parse(text);
  const globalArgs = {};
  const stages = [];
  let stage;
  for (const instruction of dockerfile.getInstructions()) {
    const keyword = instruction.getKeyword();
    const line = (instruction.getRange()?.start.line ?? 0) + 1;
    if (keyword === 'FROM') {
      const image = expandVariables(instruction.getImage() ?? '', globalArgs);
      stage = { index: stages.length, name: instruction.getBuildStage() ?? undefined, image, line, steps: [] };
      stages.push(stage);
      continue;
    }
    if (keyword === 'ARG' && !stage) {
      for (const p of instruction.getProperties()) globalArgs[p.getName()] = p.getValue() ?? '';
      continue;
    }
    if (!stage) continue;
    if (keyword === 'ARG' || keyword === 'ENV') {
      stage.steps.push({ keyword, line, values: instruction.getProperties().map((p) => [p.getName(), p.getValue() ?? '']) });
    } else if (keyword === 'RUN') {
      stage.steps.push({ keyword, line, command: instruction.getArgumentsContent() ?? '' });
    } else if (keyword === 'COPY' || keyword === 'ADD') {
      const flags = Object.fromEntries(instruction.getFlags().map((f) => [f.getName(), f.getValue()]));
      const args = instruction.getArguments().map((a) => a.getValue());
      stage.steps.push({ keyword, line, flags, sources: args.slice(0, -1), destination: args[args.length - 1] });
    } else if (keyword === 'WORKDIR' || keyword === 'USER') {
      stage.steps.push({ keyword, line, value: instruction.getArgumentsContent()?.trim() ?? '' });
    } else if (keyword === 'CMD' || keyword === 'ENTRYPOINT') {
      const raw = instruction.getArgumentsContent()?.trim() ?? '';
      stage.steps.push({ keyword, line, argv: raw.startsWith('[') ? JSON.parse(raw) : ['/bin/sh', '-c', raw] });
    }
  }
  return { globalArgs, stages };
}

/**
 * Splits one RUN command into its simple commands (joined by `&&` or `;`), each as argv after
 * quote removal and variable expansion, with an output redirection if any. A part that uses
 * anything else (subshells, `||`, pipes) is kept whole and marked `compound`: it is reported, not run.
 */
export function splitShell(command, vars) {
  const parts = [];
  let words = [];
  let word = null;
  let compound = false;
  let start = 0;
  const flushWord = () => {
    if (word !== null) words.push(word);
    word = null;
  };
  const flushPart = (end) => {
    flushWord();
    const text = command.slice(start, end).trim();
    if (text) parts.push({ text, words, compound });
    words = [];
    compound = false;
  };
  for (let i = 0; i < command.length; i++) {
    const c = command[i];
    if (c === "'") {
      const close = command.indexOf("'", i + 1);
      if (close < 0) throw new Error(`unterminated ' in: ${command}`);
      word = (word ?? '') + command.slice(i + 1, close);
      i = close;
    } else if (c === '"') {
      let j = i + 1;
      let value = '';
      for (; j < command.length && command[j] !== '"'; j++) {
        if (command[j] === '\\' && '"\\$`'.includes(command[j + 1])) value += command[++j];
        else value += command[j];
      }
      if (j >= command.length) throw new Error(`unterminated " in: ${command}`);
      word = (word ?? '') + expandVariables(value, vars);
      i = j;
    } else if (c === '\\') {
      word = (word ?? '') + (command[i + 1] ?? '');
      i += 1;
    } else if (c === '&' && command[i + 1] === '&') {
      flushPart(i);
      start = i + 2;
      i += 1;
    } else if (c === ';') {
      flushPart(i);
      start = i + 1;
    } else if ('()|<`'.includes(c)) {
      compound = true;
      flushWord();
    } else if (c === '>') {
      flushWord();
      words.push('>');
    } else if (/\s/.test(c)) {
      flushWord();
    } else if (c === '$') {
      const m = /^\$(?:\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z_][A-Za-z0-9_]*)/.exec(command.slice(i));
      if (m) {
        word = (word ?? '') + expandVariables(m[0], vars);
        i += m[0].length - 1;
      } else {
        word = (word ?? '') + c;
      }
    } else {
      word = (word ?? '') + c;
    }
  }
  flushPart(command.length);
  return parts.map((p) => {
    const redirect = p.words.indexOf('>');
    return redirect < 0
      ? { text: p.text, argv: p.words, compound: p.compound }
      : { text: p.text, argv: p.words.slice(0, redirect), stdoutTo: p.words[redirect + 1], compound: p.compound || p.words.length > redirect + 2 };
  });
}

// ---------------------------------------------------------------------------------------------
// .dockerignore

function globToRegExp(pattern) {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*' && pattern[i + 1] === '*') {
      re += pattern[i + 2] === '/' ? '(?:.*/)?' : '.*';
      i += pattern[i + 2] === '/' ? 2 : 1;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Whether `path` (relative, `/`-separated) is excluded by .dockerignore `patterns` (a parent match excludes it too). */
export function dockerignored(path, patterns) {
  let excluded = false;
  for (const raw of patterns) {
    const negate = raw.startsWith('!');
    const re = globToRegExp((negate ? raw.slice(1) : raw).replace(/^\/+|\/+$/g, ''));
    const segments = path.split('/');
    const hit = segments.some((_, i) => re.test(segments.slice(0, i + 1).join('/')));
    if (hit) excluded = !negate;
  }
  return excluded;
}

function readDockerignore(file) {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

/**
 * The build context as a clean clone has it: tracked and new (not git-ignored) files, less what
 * the Dockerfile's .dockerignore excludes. Deleted-but-tracked files are left out.
 */
function contextFiles(contextDir, ignorePatterns) {
  const listed = run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: contextDir }).stdout.split('\0').filter(Boolean);
  return listed.filter((f) => existsSync(join(contextDir, f)) && !dockerignored(f, ignorePatterns)).sort();
}

// ---------------------------------------------------------------------------------------------
// Base images and what stands in for them

/** Python that a pinned `python:X.Y.Z-…` image carries, and the pip its ensurepip installs. */
const PYTHON_IMAGE_PIP = { '3.12': '24.3.1' };

/**
 * How each base image is stood in for. The keys come from pins.json, so a changed pin without a
 * matching stand-in fails with this message instead of running on the wrong base.
 */
export function baseLayers() {
  const py = /^python:(\d+\.\d+)\.\d+-/.exec(pins.images.python);
  const node = /^node:(\d+\.\d+\.\d+)-/.exec(pins.images.node);
  return {
    [pins.images.python]: py ? { kind: 'python', minor: py[1], pip: PYTHON_IMAGE_PIP[py[1]] } : undefined,
    [pins.images.node]: node ? { kind: 'node', version: node[1] } : undefined,
    [pins.images.llamafactory]: { kind: 'llamafactory' },
  };
}

/** Interpreters installed by pyenv (its shims answer only for the selected version). */
function pyenvInterpreters(minor) {
  const versions = join(process.env.PYENV_ROOT ?? join(homedir(), '.pyenv'), 'versions');
  if (!existsSync(versions)) return [];
  return readdirSync(versions)
    .filter((v) => v.startsWith(`${minor}.`))
    .sort((a, b) => Number(b.split('.')[2]) - Number(a.split('.')[2]))
    .map((v) => join(versions, v, 'bin', `python${minor}`));
}

function findPython(minor) {
  for (const candidate of [process.env[`TUNEPIPE_PYTHON${minor.replace('.', '')}`], `/usr/bin/python${minor}`, ...pyenvInterpreters(minor), `python${minor}`].filter(Boolean)) {
    const r = run(candidate, ['-c', 'import sys; print(sys.executable); print("%d.%d.%d" % sys.version_info[:3])'], { allowFail: true });
    if (r.status === 0 && r.stdout.split('\n')[1]?.startsWith(`${minor}.`)) return { executable: r.stdout.split('\n')[0], version: r.stdout.split('\n')[1] };
  }
  throw new Error(`Python ${minor} (the image's base) not found: install it (pyenv install ${minor}) or set TUNEPIPE_PYTHON${minor.replace('.', '')}`);
}

/**
 * Packages whose pip install compiles CUDA kernels, and why that cannot run here. Their install
 * step runs as a dry run (resolution + setup-script metadata), then kernel-less for the import check.
 */
const CUDA_KERNEL_PACKAGES = {
  gptqmodel: 'compiles its CUDA kernels (Marlin, ExLlama, QQQ) with nvcc for every TORCH_CUDA_ARCH_LIST entry; no CUDA 12.8 toolkit here (Debian ships CUDA 11.8 in non-free, 2.3 GB, which torch 2.8 (cu128) refuses to build against)',
};

// ---------------------------------------------------------------------------------------------
// Running the steps

/** Absolute paths of the image (`/tmp/x`) live under `root` here. */
function inRoot(root, path) {
  return join(root, path);
}

function isImagePath(arg) {
  return arg.startsWith('/') && arg !== '/dev/null';
}

function copyInto(source, destination, chmod) {
  const st = statSync(source);
  mkdirSync(dirname(destination), { recursive: true });
  cpSync(source, destination, { recursive: true });
  if (chmod && !st.isDirectory()) chmodSync(destination, Number.parseInt(chmod, 8));
}

/**
 * Carries out one image's Dockerfile in `workDir`. Returns the report: every instruction and shell
 * command with how it was handled (`ran`, `dry-run`, `not run` with the reason).
 */
export function runDockerfile({ image, dockerfile, contextDir, workDir, layer }) {
  const text = readFileSync(dockerfile, 'utf8');
  const { stages } = readDockerfile(text);
  const ignore = readDockerignore(`${dockerfile}.dockerignore`).concat(readDockerignore(join(contextDir, '.dockerignore')));
  const logFile = join(workDir, 'steps.log');
  const report = { image, dockerfile: relative(repoRoot, dockerfile), stages: [] };
  const bases = baseLayers();
  const roots = new Map();
  let context;
  for (const stage of stages) {
    const base = bases[stage.image] ?? roots.get(stage.image)?.base;
    if (!base) throw new Error(`${report.dockerfile}:${stage.line}: no stand-in for base image ${stage.image}; the stand-ins follow pins.json images (${Object.keys(bases).join(', ')})`);
    const root = join(workDir, `stage-${stage.index}`);
    mkdirSync(root, { recursive: true });
    const env = { ...layer.env(base, root) };
    const vars = {};
    let cwd = '/';
    const stageReport = { from: stage.image, name: stage.name, base: base.kind, steps: [] };
    report.stages.push(stageReport);
    const note = (step, how, detail) => stageReport.steps.push({ line: step.line, what: step.what, how, ...(detail ? { detail } : {}) });
    for (const step of stage.steps) {
      if (step.keyword === 'ARG' || step.keyword === 'ENV') {
        for (const [name, value] of step.values) {
          const expanded = expandVariables(value, { ...vars });
          vars[name] = expanded;
          // Image paths in the environment (HF_HOME=/tmp/hf-home) point into the stand-in root.
          if (step.keyword === 'ENV') env[name] = isImagePath(expanded) ? inRoot(root, expanded) : expanded;
          else env[name] = expanded;
        }
        note({ ...step, what: `${step.keyword} ${step.values.map(([k, v]) => `${k}=${v}`).join(' ')}` }, 'applied');
      } else if (step.keyword === 'WORKDIR') {
        cwd = step.value.startsWith('/') ? step.value : join(cwd, step.value);
        mkdirSync(inRoot(root, cwd), { recursive: true });
        note({ ...step, what: `WORKDIR ${step.value}` }, 'applied');
      } else if (step.keyword === 'USER') {
        note({ ...step, what: `USER ${step.value}` }, 'not run', 'runs as the current user here');
      } else if (step.keyword === 'COPY' || step.keyword === 'ADD') {
        const what = `${step.keyword} ${Object.entries(step.flags).map(([k, v]) => `--${k}=${v}`).join(' ')} ${step.sources.join(' ')} ${step.destination}`.replace(/\s+/g, ' ');
        const destination = inRoot(root, step.destination.startsWith('/') ? step.destination : join(cwd, step.destination));
        if (step.flags.from) {
          const from = roots.get(step.flags.from);
          if (!from) throw new Error(`${report.dockerfile}:${step.line}: COPY --from=${step.flags.from} names no earlier stage`);
          for (const source of step.sources) copyInto(inRoot(from.root, source), step.destination.endsWith('/') && !source.endsWith('/') ? join(destination, source.split('/').pop()) : destination, step.flags.chmod);
        } else {
          context ??= contextFiles(contextDir, ignore);
          for (const source of step.sources) {
            if (source === '.') {
              for (const f of context) copyInto(join(contextDir, f), join(destination, f));
            } else {
              if (!context.includes(source)) throw new Error(`${report.dockerfile}:${step.line}: ${source} is not in the build context (${contextDir})`);
              copyInto(join(contextDir, source), step.destination.endsWith('/') ? join(destination, source.split('/').pop()) : destination, step.flags.chmod);
            }
          }
        }
        note({ ...step, what }, 'ran');
      } else if (step.keyword === 'RUN') {
        for (const part of splitShell(step.command, { ...vars, ...env })) {
          const handled = layer.runCommand({ part, base, root, cwd, env, logFile, step });
          note({ ...step, what: part.text }, handled.how, handled.detail);
          if (handled.installed) stageReport.steps[stageReport.steps.length - 1].installed = handled.installed;
        }
      } else if (step.keyword === 'CMD' || step.keyword === 'ENTRYPOINT') {
        stageReport[step.keyword.toLowerCase()] = step.argv;
        note({ ...step, what: `${step.keyword} ${JSON.stringify(step.argv)}` }, 'recorded');
      }
    }
    roots.set(stage.name ?? String(stage.index), { root, base });
    stageReport.root = root;
    stageReport.env = Object.fromEntries(Object.entries(env).filter(([k]) => vars[k] !== undefined));
  }
  return report;
}

/** The shell commands this tier carries out, with the image's programs swapped for the stand-in's. */
function makeLayer({ python, sitePackagesOfBase }) {
  return {
    env(base, root) {
      const env = {};
      if (base.kind === 'python' || base.kind === 'llamafactory') {
        env.VIRTUAL_ENV = python.venv;
        env.PATH = `${join(python.venv, 'bin')}:${process.env.PATH}`;
        env.PYTHONNOUSERSITE = '1';
      }
      env.HOME = inRoot(root, '/root');
      mkdirSync(env.HOME, { recursive: true });
      if (base.kind === 'node') {
        // The registry cache is shared across runs (the image's own cache is thrown away with it).
        env.npm_config_cache = join(cacheRoot(), 'npm-cache');
        env.npm_config_update_notifier = 'false';
      }
      return env;
    },
    runCommand({ part, root, cwd, env, logFile }) {
      if (part.compound) return { how: 'not run', detail: 'compound shell (subshell or ||): user and group management inside the image' };
      const [program, ...args] = part.argv;
      const mapArgs = (list) => list.map((a) => (isImagePath(a) ? inRoot(root, a) : a));
      const options = { cwd: inRoot(root, cwd), env, logFile };
      if (['useradd', 'groupadd', 'getent', 'apt-get', 'chown'].includes(program)) return { how: 'not run', detail: 'system change inside the image (needs root in its /etc)' };
      if (program === 'pip' || program === 'pip3') return runPip(python, args, mapArgs, options, sitePackagesOfBase);
      if (program === 'python' || program === 'python3') {
        const r = run(python.python, mapArgs(args), options);
        return { how: 'ran', detail: r.stdout.trim().split('\n').slice(-1)[0] };
      }
      if (program === 'npm') {
        run('npm', mapArgs(args), options);
        return { how: 'ran' };
      }
      if (['rm', 'chmod', 'mkdir', 'ln', 'printf', 'echo'].includes(program)) {
        const r = run(program, mapArgs(args), options);
        if (part.stdoutTo) {
          const target = isImagePath(part.stdoutTo) ? inRoot(root, part.stdoutTo) : join(options.cwd, part.stdoutTo);
          mkdirSync(dirname(target), { recursive: true });
          writeFileSync(target, r.stdout);
        }
        return { how: 'ran' };
      }
      return { how: 'not run', detail: `no stand-in for ${program}` };
    },
  };
}

function requirementName(arg) {
  return /^([A-Za-z0-9][A-Za-z0-9._-]*)/.exec(arg)?.[1]?.toLowerCase().replace(/[-_.]+/g, '-');
}

function runPip(python, args, mapArgs, options, sitePackagesOfBase) {
  const pip = [python.python, '-m', 'pip'];
  const [sub, ...rest] = args;
  const kernels = sub === 'install' ? rest.map(requirementName).filter((n) => n && CUDA_KERNEL_PACKAGES[n]) : [];
  if (kernels.length === 0) {
    if (sub !== 'install') {
      run(pip[0], [...pip.slice(1), ...mapArgs(args)], options);
      return { how: 'ran' };
    }
    // pip's install report says where each distribution came from (its wheel's URL), so a test can
    // tell a download from the package index apart from a local wheel. It lives beside the log, not
    // in the stand-in's file system.
    const reportFile = join(dirname(options.logFile), `pip-report-${digest(args.join(' ')).slice(0, 12)}.json`);
    run(pip[0], [...pip.slice(1), sub, '--report', reportFile, ...mapArgs(rest)], options);
    const installed = JSON.parse(readFileSync(reportFile, 'utf8')).install.map((i) => ({ name: i.metadata.name, version: i.metadata.version, url: i.download_info.url }));
    return { how: 'ran', installed };
  }
  // As written, up to the point where nvcc would start: resolution against the base layer and the
  // package's setup script (which reads TORCH_CUDA_ARCH_LIST) with the Dockerfile's environment.
  const reportFile = join(options.cwd, `.pip-dry-run-${kernels.join('-')}.json`);
  // The base image has a CUDA toolkit; here CUDA_HOME is the CUDA 12.8 runtime torch's wheels ship
  // (headers and libraries, no nvcc): enough for a setup script to declare its CUDA extensions.
  const cudaRuntime = sitePackagesOfBase ? join(sitePackagesOfBase, 'nvidia', 'cuda_runtime') : undefined;
  const cudaEnv = options.env.CUDA_HOME || !cudaRuntime || !existsSync(cudaRuntime) ? {} : { CUDA_HOME: cudaRuntime };
  const dry = run(pip[0], [...pip.slice(1), sub, '--dry-run', '--report', reportFile, ...mapArgs(rest)], { ...options, env: { ...options.env, ...cudaEnv }, allowFail: true });
  if (dry.status !== 0) {
    const tail = dry.output.split('\n').filter((l) => l.trim()).slice(-25).join('\n');
    throw new Error(`pip ${args.join(' ')} fails before compiling anything (dry run: dependency resolution and the setup script, with the Dockerfile's environment):\n${tail}`);
  }
  const planned = JSON.parse(readFileSync(reportFile, 'utf8')).install.map((i) => `${i.metadata.name}==${i.metadata.version}`);
  // Then without kernels, so the Dockerfile's own import check can run: with TORCH_CUDA_ARCH_LIST
  // unset and no GPU, the setup script declares no extension.
  const { TORCH_CUDA_ARCH_LIST: _archList, ...withoutArchList } = options.env;
  run(pip[0], [...pip.slice(1), ...mapArgs(args)], { ...options, env: withoutArchList });
  return {
    how: 'dry-run',
    detail: `${kernels.join(', ')} ${kernels.map((k) => CUDA_KERNEL_PACKAGES[k]).join('; ')}. Ran: dependency resolution (${planned.length} to install: ${planned.join(', ')}) and the setup script with the Dockerfile's environment; then installed without kernels for the import check`,
    sitePackagesOfBase,
  };
}

// ---------------------------------------------------------------------------------------------
// The images

function venvSitePackages(venv) {
  const lib = join(venv, 'lib');
  const py = readdirSync(lib).find((d) => d.startsWith('python'));
  return join(lib, py, 'site-packages');
}

/** A clean venv of the image's Python with the pip its base image ships. */
function cleanPythonVenv(dir, base, logFile) {
  const interpreter = findPython(base.minor);
  const venv = join(dir, 'venv');
  run(interpreter.executable, ['-m', 'venv', venv], { logFile });
  const python = join(venv, 'bin', 'python');
  if (base.pip) run(python, ['-m', 'pip', 'install', '--no-cache-dir', `pip==${base.pip}`], { logFile });
  return { venv, python, version: interpreter.version };
}

/**
 * A venv layered on the tier's LLaMA-Factory venv (torch, llamafactory): the base's packages are
 * visible through a .pth file and nothing of the base is copied or changed, as with an image layer.
 */
function layeredVenv(dir, base, logFile) {
  const venv = join(dir, 'venv');
  run(base.python, ['-m', 'venv', '--without-pip', venv], { logFile });
  const site = venvSitePackages(venv);
  // addsitedir (not a bare path) so the base's own .pth files are honoured as in the image.
  writeFileSync(join(site, '_tunepipe_base_layer.pth'), `import site; site.addsitedir(${JSON.stringify(base.sitePackages)})\n`);
  return { venv, python: join(venv, 'bin', 'python') };
}

/**
 * ensure() builds in a scratch folder and renames it into place, but pip writes the venv's absolute
 * path into its console scripts' `#!` lines: point them at the final place.
 */
function relocateVenvScripts(venv, from, to) {
  const bin = join(venv, 'bin');
  for (const entry of readdirSync(bin)) {
    const file = join(bin, entry);
    if (!statSync(file).isFile()) continue;
    const text = readFileSync(file);
    if (text[0] !== 0x23 || text[1] !== 0x21) continue;
    const content = text.toString('utf8');
    if (content.includes(from)) writeFileSync(file, content.replaceAll(from, to));
  }
}

/** Builds of an image for an older Dockerfile or context are never read again: keep only `key`. */
function pruneOtherBuilds(name, key) {
  const dir = join(cacheRoot(), 'images', name);
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir)) {
    if (entry === key || entry.startsWith(`${key}.`) || entry.endsWith('.lock')) continue;
    // A build another process is running right now holds its lock; leave it alone.
    if (existsSync(join(dir, `${entry.replace(/\.partial$/, '')}.lock`))) continue;
    rmSync(join(dir, entry), { recursive: true, force: true });
  }
}

function filesDigest(dir, files) {
  const h = createHash('sha256');
  for (const f of files) h.update(f).update('\0').update(readFileSync(join(dir, f))).update('\0');
  return h.digest('hex').slice(0, 12);
}

export const IMAGES = {
  fetch: { dockerfile: 'images/fetch/Dockerfile', context: 'images/fetch' },
  gptq: { dockerfile: 'images/gptq/Dockerfile', context: 'images/gptq' },
  qlora: { dockerfile: 'images/qlora/Dockerfile', context: 'images/qlora' },
  runtime: { dockerfile: 'images/runtime/Dockerfile', context: '.' },
};

/**
 * Runs one image's Dockerfile (cached by the Dockerfile, its build context and its base layer) and
 * returns `{ dir, report }`. A Dockerfile whose steps fail throws with the failing step's output.
 */
export async function buildImage(name) {
  const spec = IMAGES[name];
  if (!spec) throw new Error(`unknown image ${name}; known: ${Object.keys(IMAGES).join(', ')}`);
  const dockerfile = join(repoRoot, spec.dockerfile);
  const contextDir = join(repoRoot, spec.context);
  const text = readFileSync(dockerfile, 'utf8');
  const { stages } = readDockerfile(text);
  const bases = baseLayers();
  const kinds = new Set(stages.map((s) => bases[s.image]?.kind).filter(Boolean));
  let baseVenv;
  if (kinds.has('llamafactory')) {
    const { install } = await import('./python.mjs');
    baseVenv = await install();
  }
  const ignore = readDockerignore(`${dockerfile}.dockerignore`);
  const context = contextFiles(contextDir, ignore);
  // The key covers what the steps are (Dockerfile, build context), what they run on (base layer,
  // Node) and how they are carried out (this file).
  const key = digest(text, filesDigest(contextDir, context), JSON.stringify([...kinds]), baseVenv?.venv ?? '', process.version, readFileSync(new URL(import.meta.url), 'utf8'));
  pruneOtherBuilds(name, key);
  let result;
  const dir = ensure(`images/${name}`, key, (tmp) => {
    const logFile = join(tmp, 'steps.log');
    const pythonBase = stages.map((s) => bases[s.image]).find((b) => b?.kind === 'python');
    const python = pythonBase
      ? cleanPythonVenv(tmp, pythonBase, logFile)
      : baseVenv
        ? layeredVenv(tmp, baseVenv, logFile)
        : undefined;
    const nodeBase = stages.map((s) => bases[s.image]).find((b) => b?.kind === 'node');
    if (nodeBase && process.version !== `v${nodeBase.version}`) {
      throw new Error(`${spec.dockerfile} builds on Node ${nodeBase.version}; this machine has ${process.version}. Run the tier with Node ${nodeBase.version}.`);
    }
    const layer = makeLayer({ python, sitePackagesOfBase: baseVenv?.sitePackages });
    result = runDockerfile({ image: name, dockerfile, contextDir, workDir: join(tmp, 'rootfs'), layer });
    for (const [i, stage] of stages.entries()) {
      if (bases[stage.image]?.kind === 'llamafactory') result.stages[i].baseSitePackages = baseVenv.sitePackages;
    }
    result.python = python ? { ...python, venv: python.venv.replace(tmp, join(cacheRoot(), 'images', name, key)) } : undefined;
    if (result.python) result.python.python = join(result.python.venv, 'bin', 'python');
    if (python) relocateVenvScripts(python.venv, tmp, join(cacheRoot(), 'images', name, key));
    // Earlier build stages only feed COPY --from: the final stage is what the image is (and the
    // runtime image's build stage alone holds the monorepo's 700 MB of dev dependencies).
    for (const stage of result.stages.slice(0, -1)) {
      rmSync(stage.root, { recursive: true, force: true });
      stage.root = undefined;
    }
    writeFileSync(join(tmp, 'report.json'), JSON.stringify(result, (k, v) => (typeof v === 'string' ? v.replaceAll(tmp, join(cacheRoot(), 'images', name, key)) : v), 2) + '\n');
  });
  return { dir, report: JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const names = process.argv.slice(2);
  for (const name of names.length > 0 ? names : Object.keys(IMAGES)) {
    const started = Date.now();
    const { dir, report } = await buildImage(name);
    log(`${name}: ${dir} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    for (const stage of report.stages) {
      for (const step of stage.steps) console.log(`${name} ${stage.from} line ${step.line}: [${step.how}] ${step.what}${step.detail ? `\n    ${step.detail}` : ''}`);
    }
  }
}

// One artifact protocol, three publishers: the stage wrapper every batch pod runs (with this
// machine's /bin/sh, find, sort and sha256sum), convert, and the local runner. Each publishes the
// same folders here; SHA256SUMS and the completion marker must come out byte for byte the same.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { COMPLETION_MARKER, formatMarker, listedInSums, parseMarker, SHA256SUMS, shellCheckFunctions, STAGE_ENV, sumsLine } from '../src/artifacts/protocol.ts';
import { artifactFolderProblem, completeFolder, publishFolder, readCompletionMarker, verifySha256Sums } from '../src/artifacts/folder.ts';
import { deliveredPath } from '../src/delivery.ts';
import { stageScript } from '../src/stage-script.ts';
import { convertCommand } from '../../convert/src/index.ts';
import { publishLocalStage } from '../../runner/src/local/publish.ts';

const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
const HASH = 'c0ffee'.padEnd(64, '0');
const IDENTITY = { stage: 'convert', hash: HASH };

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'tunepipe-protocol-'));
}

/** Names that broke one publisher or another: protocol look-alikes, spaces, escapes, byte order. */
const TREE: Record<string, string> = {
  'model-00001-of-00002.safetensors': 'weights',
  'a file with spaces.txt': 'spaces',
  [`${COMPLETION_MARKER}-notes`]: 'named like the marker, but content',
  [`${COMPLETION_MARKER}.json`]: '{}',
  'empty': '',
  'nested/deeper/SHA256SUMS': 'a nested file with a protocol name is content',
  [`nested/deeper/${COMPLETION_MARKER}`]: 'so is a nested marker name',
  'nested/x y/z.json': '{"z":1}',
  'back\\slash.txt': 'sha256sum escapes this name',
  'ünïcode.txt': 'bytes sort after ASCII',
  'B.txt': 'upper case sorts first',
  'a.txt': 'lower case after',
  '-dash.txt': 'not an option',
  // A crash mid-publication leaves this behind; it is the protocol's own and never listed.
  [`${SHA256SUMS}.tmp`]: 'stale',
};

function writeTree(dir: string): void {
  for (const [path, content] of Object.entries(TREE)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  // Symlinks are not regular files: neither `find -type f` nor the Node side lists them.
  symlinkSync('a.txt', join(dir, 'link-to-a.txt'));
}

/** SHA256SUMS as the protocol defines it, computed independently of every publisher. */
function expectedSums(): string {
  const files = Object.keys(TREE).filter((f) => f !== `${SHA256SUMS}.tmp`);
  files.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return files.map((f) => `${createHash('sha256').update(TREE[f]!).digest('hex')}  ${f}\n`).join('');
}

/** Every file of a published folder with its content (symlinks by target). */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (at: string) => {
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      const path = join(at, entry.name);
      if (entry.isDirectory()) walk(path);
      else out[relative(dir, path)] = entry.isSymbolicLink() ? `-> ${readlinkSync(path)}` : readFileSync(path, 'latin1');
    }
  };
  walk(dir);
  return out;
}

function runWrapper(mode: 'rename' | 'in-place', out: string, command: readonly string[], env: Record<string, string> = {}) {
  const dir = tempDir();
  const script = join(dir, 'stage.sh');
  writeFileSync(script, stageScript());
  const r = spawnSync('/bin/sh', [script, mode, out, '--', ...command], {
    cwd: repoRoot,
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', [STAGE_ENV.stage]: IDENTITY.stage, [STAGE_ENV.hash]: IDENTITY.hash, ...env },
    encoding: 'utf8',
  });
  rmSync(dir, { recursive: true, force: true });
  return r;
}

function published(dir: string): { sums: string; marker: string } {
  return { sums: readFileSync(join(dir, SHA256SUMS), 'utf8'), marker: readFileSync(join(dir, COMPLETION_MARKER), 'utf8') };
}

test('the protocol: only its own top-level files are left out; the marker is one JSON line', () => {
  for (const f of [SHA256SUMS, `${SHA256SUMS}.tmp`, COMPLETION_MARKER, `${COMPLETION_MARKER}.tmp`]) assert.equal(listedInSums(f), false, f);
  for (const f of [`sub/${SHA256SUMS}`, `${COMPLETION_MARKER}-notes`, `${SHA256SUMS}.old`, `sub/${COMPLETION_MARKER}`]) assert.equal(listedInSums(f), true, f);
  assert.equal(formatMarker({ stage: 'merge', hash: 'ab12', files: 3 }), '{"stage":"merge","hash":"ab12","files":3}\n');
  assert.deepEqual(parseMarker('{"stage":"merge","hash":"ab12","files":3}\n'), { stage: 'merge', hash: 'ab12', files: 3 });
  assert.equal(parseMarker('{"stage":"merge","hash":"ab12"'), undefined, 'a half-written marker is no marker');
  assert.equal(parseMarker('{"stage":"merge","hash":"ab12","files":"3"}'), undefined);
  assert.throws(() => formatMarker({ stage: 'a"b', hash: 'x', files: 0 }), /not a plain name/);
});

test('the same tree published by the wrapper, by convert and by the local runner: byte-identical SHA256SUMS and marker', async () => {
  const root = tempDir();
  try {
    const source = join(root, 'source');
    writeTree(source);
    const expected = { sums: expectedSums(), marker: formatMarker({ ...IDENTITY, files: Object.keys(TREE).length - 1 }) };

    // 1. The wrapper, rename mode: the "tool" copies the tree into <out>.partial.
    const shellOut = join(root, 'shell', HASH);
    const shell = runWrapper('rename', shellOut, ['/bin/sh', '-c', 'cp -R "$0"/. "$1.partial"', source, shellOut]);
    assert.equal(shell.status, 0, shell.stderr);
    assert.deepEqual(published(shellOut), expected);

    // 2. Convert's publication: core's publishFolder with the digests convert computed while writing.
    const convertOut = join(root, 'convert', HASH);
    cpSync(source, `${convertOut}.partial`, { recursive: true, verbatimSymlinks: true });
    const known = new Map([['a.txt', createHash('sha256').update(TREE['a.txt']!).digest('hex')]]);
    await publishFolder(`${convertOut}.partial`, convertOut, IDENTITY, known);
    assert.deepEqual(published(convertOut), expected);

    // 3. The local runner, rename mode.
    const runnerOut = join(root, 'runner', HASH);
    cpSync(source, `${runnerOut}.partial`, { recursive: true, verbatimSymlinks: true });
    await publishLocalStage({ mode: 'rename', outDir: runnerOut, workDir: `${runnerOut}.partial`, stage: { name: IDENTITY.stage, hash: IDENTITY.hash } });
    assert.deepEqual(published(runnerOut), expected);

    // The folders themselves are the same too: no leftover SHA256SUMS.tmp, no work folder.
    assert.deepEqual(snapshot(convertOut), snapshot(shellOut));
    assert.deepEqual(snapshot(runnerOut), snapshot(shellOut));
    for (const out of [shellOut, convertOut, runnerOut]) {
      assert.equal(existsSync(join(out, `${SHA256SUMS}.tmp`)), false);
      assert.equal(existsSync(`${out}.partial`), false);
    }
    assert.deepEqual(await readCompletionMarker(runnerOut, HASH), { ...IDENTITY, files: Object.keys(TREE).length - 1 });
    assert.equal(await readCompletionMarker(runnerOut, 'other'), undefined);

    // The reader side (fetch-model checks an artifacts folder this way): the wrapper's sums verify.
    assert.deepEqual(await verifySha256Sums(shellOut), []);
    writeFileSync(join(shellOut, 'nested/x y/z.json'), 'changed');
    rmSync(join(shellOut, 'empty'));
    assert.deepEqual(await verifySha256Sums(shellOut), ['empty', 'nested/x y/z.json']);
    assert.equal(await verifySha256Sums(source), undefined, 'no SHA256SUMS: nothing to verify');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('in-place publication (a resumable stage) gives the same bytes from the wrapper and the local runner', async () => {
  const root = tempDir();
  try {
    const shellOut = join(root, 'shell');
    const runnerOut = join(root, 'runner');
    writeTree(shellOut);
    writeTree(runnerOut);
    const shell = runWrapper('in-place', shellOut, ['true']);
    assert.equal(shell.status, 0, shell.stderr);
    await publishLocalStage({ mode: 'in-place', outDir: runnerOut, workDir: runnerOut, stage: { name: IDENTITY.stage, hash: IDENTITY.hash } });
    assert.deepEqual(published(runnerOut), published(shellOut));
    assert.equal(published(shellOut).sums, expectedSums());
    const core = join(root, 'core');
    writeTree(core);
    await completeFolder(core, IDENTITY);
    assert.deepEqual(published(core), published(shellOut));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a file name with a line break cannot be listed: every publisher refuses, none writes a marker', async () => {
  assert.throws(() => sumsLine('0'.repeat(64), 'a\nb'), /line break/);
  const root = tempDir();
  try {
    const shellOut = join(root, 'shell');
    const nodeOut = join(root, 'node');
    for (const dir of [shellOut, nodeOut]) {
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'bad\nname'), 'x');
    }
    const shell = runWrapper('in-place', shellOut, ['true']);
    assert.notEqual(shell.status, 0);
    assert.equal(existsSync(join(shellOut, COMPLETION_MARKER)), false);
    await assert.rejects(completeFolder(nodeOut, IDENTITY), /line break/);
    assert.equal(existsSync(join(nodeOut, COMPLETION_MARKER)), false);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('convert publishes once: under the wrapper it only writes its work folder, and all three routes give the same result', async () => {
  const root = tempDir();
  try {
    const rows = Array.from({ length: 12 }, (_, i) => JSON.stringify({ instruction: `q ${i}?`, output: `a ${i}` })).join('\n') + '\n';
    const inputs = join(root, 'inputs');
    mkdirSync(join(inputs, 'd'), { recursive: true });
    writeFileSync(join(inputs, deliveredPath('d', 'a.jsonl')), gzipSync(rows));
    const config = {
      pipeline: 'p',
      sources: [{ name: 'd', descriptor: { format: 'alpaca', license: 'MIT', files: ['a.jsonl'] }, files: [{ path: 'a.jsonl', sha256: createHash('sha256').update(rows).digest('hex'), size: Buffer.byteLength(rows) }] }],
      templateVars: {},
      seed: 1,
      split: { validation: 2, test: 2 },
      cutoffLen: 512,
    };
    const configPath = join(root, 'convert.json');
    writeFileSync(configPath, JSON.stringify(config));

    // Standalone: convert publishes the folder itself.
    const standalone = join(root, 'standalone', HASH);
    const result = await convertCommand({ config, inputsDir: inputs, outDir: standalone, stage: IDENTITY, log: () => {} });
    assert.equal(result.cached, false);

    // In the cluster: `tunepipe convert --work <out>.partial` under the wrapper, which publishes once.
    // The tool's own check runs before the wrapper publishes: the work folder has no protocol file.
    const wrapped = join(root, 'wrapped', HASH);
    const entry = new URL('../../convert/src/index.ts', import.meta.url).href;
    const code = `const { convertFromConfigFile } = await import(${JSON.stringify(entry)}); await convertFromConfigFile({ configPath: process.argv[1], inputsDir: process.argv[2], workDir: process.argv[3], log: () => {} });`;
    const check = `for f in ${SHA256SUMS} ${COMPLETION_MARKER}; do if [ -e "$0/$f" ]; then echo "convert wrote $f" >&2; exit 9; fi; done`;
    const shell = runWrapper('rename', wrapped, [
      '/bin/sh',
      '-c',
      `"$1" --import tsx --input-type=module -e "$2" "$3" "$4" "$0" && ${check}`,
      `${wrapped}.partial`,
      process.execPath,
      code,
      configPath,
      inputs,
    ]);
    assert.equal(shell.status, 0, shell.stdout + shell.stderr);

    // Locally: the runner hands convert its work folder and publishes it.
    const local = join(root, 'local', HASH);
    await convertCommand({ config, inputsDir: inputs, workDir: `${local}.partial`, log: () => {} });
    assert.equal(existsSync(join(`${local}.partial`, COMPLETION_MARKER)), false, 'convert left publication to the runner');
    await publishLocalStage({ mode: 'rename', outDir: local, workDir: `${local}.partial`, stage: { name: IDENTITY.stage, hash: IDENTITY.hash } });

    assert.deepEqual(published(wrapped), published(standalone));
    assert.deepEqual(published(local), published(standalone));
    assert.deepEqual(snapshot(wrapped), snapshot(standalone));
    assert.deepEqual(snapshot(local), snapshot(standalone));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the readers agree: the wrapper\'s shell check and the Node check accept the same folders and blame the same file', async (t) => {
  const shellCheck = (dir: string, how: 'full' | 'names') => {
    const r = spawnSync('/bin/sh', ['-c', `${shellCheckFunctions()}\nif tp_check_folder "$0" "$1" "$2"; then echo "ok $tp_listed"; else echo "bad: $tp_why"; fi`, dir, how, HASH], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.trim();
  };
  const fresh = () => {
    const root = tempDir();
    const out = join(root, HASH);
    writeTree(out);
    rmSync(join(out, `${SHA256SUMS}.tmp`));
    return { root, out };
  };
  await t.test('a published tree with awkward names passes both, with and without digests', async () => {
    const { root, out } = fresh();
    await completeFolder(out, IDENTITY);
    assert.equal(shellCheck(out, 'full'), `ok ${Object.keys(TREE).length - 1}`);
    assert.equal(shellCheck(out, 'names'), `ok ${Object.keys(TREE).length - 1}`);
    assert.equal(await artifactFolderProblem(out, HASH), undefined);
    rmSync(root, { recursive: true, force: true });
  });
  const cases: [string, (out: string) => void, string | undefined, RegExp, boolean][] = [
    ['a changed byte in a name with a backslash', (out) => writeFileSync(join(out, 'back\\slash.txt'), 'x'), 'back\\slash.txt', /back\\slash\.txt does not match/, true],
    ['a missing file with spaces', (out) => rmSync(join(out, 'nested/x y/z.json')), 'nested/x y/z.json', /nested\/x y\/z\.json is missing/, false],
    ['an unlisted file named like an option', (out) => writeFileSync(join(out, '-n'), ''), '-n', /-n is not listed/, false],
    ['a marker for another hash', (out) => writeFileSync(join(out, COMPLETION_MARKER), formatMarker({ ...IDENTITY, hash: 'f'.repeat(64), files: 12 })), COMPLETION_MARKER, /not for hash/, false],
    ['a marker whose count disagrees', (out) => writeFileSync(join(out, COMPLETION_MARKER), formatMarker({ ...IDENTITY, files: 3 })), SHA256SUMS, /another count/, false],
  ];
  for (const [name, corrupt, file, shellMessage, contentsOnly] of cases) {
    await t.test(name, async () => {
      const { root, out } = fresh();
      await completeFolder(out, IDENTITY);
      corrupt(out);
      assert.match(shellCheck(out, 'full'), shellMessage);
      assert.equal((await artifactFolderProblem(out, HASH))?.file, file);
      if (contentsOnly) {
        assert.match(shellCheck(out, 'names'), /^ok/, 'names only: a changed byte is not seen');
        assert.equal(await artifactFolderProblem(out, HASH, { contents: false }), undefined);
      } else {
        assert.match(shellCheck(out, 'names'), shellMessage);
        assert.equal((await artifactFolderProblem(out, HASH, { contents: false }))?.file, file);
      }
      rmSync(root, { recursive: true, force: true });
    });
  }
});

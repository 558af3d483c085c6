import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DockerfileParser, type Instruction } from 'dockerfile-ast';
import { validate } from 'dockerfile-utils';

const imagesDir = resolve(fileURLToPath(new URL('../../../images', import.meta.url)));

interface Finding {
  readonly line: number;
  readonly rule: string;
  readonly message: string;
}

const SECRET_NAME = /(TOKEN(?!IZ)|SECRET|PASSWORD|PASSWD|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL)/i;
const SECRET_VALUE = [/\bhf_[A-Za-z0-9]{30,}\b/, /\bAKIA[0-9A-Z]{16}\b/, /\bgh[pousr]_[A-Za-z0-9]{30,}\b/, /-----BEGIN [A-Z ]*PRIVATE KEY-----/, /\bsk-[A-Za-z0-9]{20,}\b/];
const ROOT_USERS = new Set(['root', '0']);

/**
 * Policy for this project's images, on top of dockerfile-utils' syntax validation:
 * pinned base images, a non-root final USER, no ADD of URLs, no secrets baked in.
 */
function lintDockerfile(text: string): Finding[] {
  const findings: Finding[] = [];
  for (const d of validate(text)) {
    findings.push({ line: d.range.start.line + 1, rule: 'syntax', message: typeof d.message === 'string' ? d.message : d.message.value });
  }
  const dockerfile = DockerfileParser.parse(text);
  const line = (i: Instruction): number => (i.getRange()?.start.line ?? 0) + 1;
  const stages = new Set<string>();
  const froms = dockerfile.getFROMs();
  if (froms.length === 0) findings.push({ line: 1, rule: 'from', message: 'no FROM instruction' });
  const globalArgs = argsBeforeFirstFrom(text);
  for (const from of froms) {
    // A base image may come from an ARG declared before the first FROM (the pin set writes its
    // default): judge the reference an unparameterised build really pulls.
    const image = substituteArgs(from.getImage() ?? '', globalArgs);
    const ref = DockerfileParser.parse(`FROM ${image}\n`).getFROMs()[0]!;
    const name = ref.getImageName();
    const tag = ref.getImageTag();
    const digest = ref.getImageDigest();
    if (name !== null && stages.has(name)) {
      // Refers to an earlier build stage.
    } else if (name === null || name.includes('$')) {
      findings.push({ line: line(from), rule: 'pinned-base', message: `base image must be a pinned reference (literal, or an ARG with a pinned default), got ${JSON.stringify(from.getImage())}` });
    } else if (name !== 'scratch' && digest === null && (tag === null || tag === 'latest' || !/\d/.test(tag))) {
      findings.push({ line: line(from), rule: 'pinned-base', message: `base image ${image} is not pinned to a versioned tag or digest` });
    }
    const stage = from.getBuildStage();
    if (stage) stages.add(stage);
  }
  // The last USER of the final stage decides who runs the container.
  const instructions = dockerfile.getInstructions();
  const lastFrom = froms[froms.length - 1];
  const finalStart = lastFrom ? line(lastFrom) : 0;
  const finalUsers = instructions.filter((i) => i.getKeyword() === 'USER' && line(i) > finalStart);
  const lastUser = finalUsers[finalUsers.length - 1];
  const user = lastUser?.getArgumentsContent()?.trim().split(':')[0];
  if (user === undefined) findings.push({ line: finalStart, rule: 'non-root', message: 'the final stage sets no USER (containers would run as root)' });
  else if (ROOT_USERS.has(user)) findings.push({ line: line(lastUser!), rule: 'non-root', message: `the final USER is ${user}` });
  for (const i of instructions) {
    const args = i.getArgumentsContent() ?? '';
    if (i.getKeyword() === 'ADD' && /(^|\s)(https?|ftp|git):\/\//i.test(args)) {
      findings.push({ line: line(i), rule: 'no-add-url', message: 'ADD of a URL: download in a RUN step with a checksum instead' });
    }
    if (i.getKeyword() === 'ENV' || i.getKeyword() === 'ARG') {
      for (const [, key, value] of args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)(?:=("[^"]*"|\S*))?/g)) {
        if (key && SECRET_NAME.test(key) && value !== undefined && value !== '""' && value !== '') {
          findings.push({ line: line(i), rule: 'no-secrets', message: `${i.getKeyword()} ${key} has a value baked into the image` });
        }
      }
    }
    for (const pattern of SECRET_VALUE) {
      if (pattern.test(args)) findings.push({ line: line(i), rule: 'no-secrets', message: `${i.getKeyword()} contains what looks like a credential` });
    }
  }
  return findings;
}

/** `ARG NAME=default` lines before the first FROM: the only ARGs a FROM line can use. */
function argsBeforeFirstFrom(text: string): Map<string, string> {
  const args = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const lineText = raw.trim();
    if (/^FROM\s/i.test(lineText)) break;
    const m = /^ARG\s+([A-Za-z_][A-Za-z0-9_]*)=(\S+)$/i.exec(lineText);
    if (m) args.set(m[1]!, m[2]!.replace(/^"(.*)"$/, '$1'));
  }
  return args;
}

function substituteArgs(value: string, args: ReadonlyMap<string, string>): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (whole, a: string | undefined, b: string | undefined) => args.get((a ?? b)!) ?? whole);
}

async function imageDockerfiles(): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(imagesDir, { withFileTypes: true })) {
    if (entry.isDirectory()) {
      for (const f of await readdir(join(imagesDir, entry.name))) if (f === 'Dockerfile') out.push(join(imagesDir, entry.name, f));
    }
  }
  return out.sort();
}

test('the four images exist: runtime, fetch, gptq, qlora', async () => {
  const files = (await imageDockerfiles()).map((f) => f.slice(imagesDir.length + 1));
  assert.deepEqual(files, ['fetch/Dockerfile', 'gptq/Dockerfile', 'qlora/Dockerfile', 'runtime/Dockerfile']);
});

test('every image Dockerfile passes syntax validation and the image policy', async () => {
  for (const file of await imageDockerfiles()) {
    const findings = lintDockerfile(await readFile(file, 'utf8'));
    assert.deepEqual(findings, [], `${file}:\n${findings.map((f) => `  line ${f.line} [${f.rule}] ${f.message}`).join('\n')}`);
  }
});

/** A Dockerfile builds on a pinned LLaMA-Factory image and pins each of `packages` exactly. */
async function llamaFactoryLayer(file: string, packages: readonly string[]): Promise<void> {
  const text = await readFile(join(imagesDir, file), 'utf8');
  const image = substituteArgs(DockerfileParser.parse(text).getFROMs()[0]!.getImage() ?? '', argsBeforeFirstFrom(text));
  const from = DockerfileParser.parse(`FROM ${image}\n`).getFROMs()[0]!;
  assert.equal(from.getImageName(), 'hiyouga/llamafactory');
  assert.match(from.getImageTag() ?? '', /^\d+\.\d+\.\d+/);
  // Each pip requirement is pinned exactly, through an ARG whose default is a version.
  const args = new Map([...text.matchAll(/^ARG\s+([A-Z_]+)=(\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
  for (const pkg of packages) {
    const m = new RegExp(`${pkg}==(?:\\$\\{([A-Z_]+)\\}|(\\d\\S*))`).exec(text);
    assert.ok(m, `${file}: ${pkg} is not pinned`);
    assert.match(m[2] ?? args.get(m[1]!) ?? '', /^\d+\.\d+\.\d+$/, `${file}: ${pkg}'s pin`);
  }
}

test('gptq image builds on a pinned LLaMA-Factory image and pins optimum + gptqmodel', async () => {
  await llamaFactoryLayer('gptq/Dockerfile', ['optimum', 'gptqmodel', 'transformers']);
});

test('qlora image builds on a pinned LLaMA-Factory image and pins bitsandbytes', async () => {
  await llamaFactoryLayer('qlora/Dockerfile', ['bitsandbytes']);
});

test('fetch image pins its Python tools', async () => {
  const requirements = await readFile(join(imagesDir, 'fetch/requirements.txt'), 'utf8');
  const pins = requirements.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
  assert.ok(pins.some((p) => p.startsWith('huggingface_hub==')));
  assert.ok(pins.some((p) => p.startsWith('modelscope==')));
  for (const p of pins) assert.match(p, /^[A-Za-z0-9_.-]+==\d[\w.]*$/, `unpinned requirement: ${p}`);
});

test('the policy catches what it is for', () => {
  const rules = (text: string): string[] => [...new Set(lintDockerfile(text).map((f) => f.rule))].sort();
  assert.deepEqual(rules('FROM node:latest\nUSER node\n'), ['pinned-base']);
  assert.deepEqual(rules('FROM python\nUSER 1000\n'), ['pinned-base']);
  assert.deepEqual(rules('ARG BASE=node:20.20.2-bookworm-slim\nFROM ${BASE}\nUSER node\n'), []);
  assert.deepEqual(rules('ARG BASE=node:latest\nFROM ${BASE}\nUSER node\n'), ['pinned-base']);
  assert.ok(rules('FROM ${UNSET}\nUSER node\n').includes('pinned-base'));
  assert.deepEqual(rules('FROM node:20.20.2-bookworm-slim\nRUN true\n'), ['non-root']);
  assert.deepEqual(rules('FROM node:20.20.2-bookworm-slim\nUSER 1000\nUSER root\n'), ['non-root']);
  assert.deepEqual(rules('FROM node:20.20.2-bookworm-slim\nADD https://example.com/x.tgz /x.tgz\nUSER 1000\n'), ['no-add-url']);
  assert.deepEqual(rules('FROM node:20.20.2-bookworm-slim\nENV HF_TOKEN=abc123\nUSER 1000\n'), ['no-secrets']);
  assert.deepEqual(rules('FROM node:20.20.2-bookworm-slim\nRUN echo AKIAABCDEFGHIJKLMNOP\nUSER 1000\n'), ['no-secrets']);
  assert.deepEqual(rules('FROM node:20.20.2-bookworm-slim AS build\nRUN true\nFROM build\nUSER 1000\n'), []);
  assert.deepEqual(rules('FROM node:20.20.2-bookworm-slim\nUSER 1000\nENV TOKEN_FILE=\n'), []);
  assert.ok(rules('FRUM node:20.20.2\nUSER 1000\n').includes('syntax'));
});

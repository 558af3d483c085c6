import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { parseAllDocuments } from 'yaml';
import { redactIssue, redactSecrets, scanForSecrets, secretShape } from '../src/rules/index.ts';
import { formatIssue } from '../src/issues.ts';

// Shapes only: these are made-up values of the right form, not credentials.
const HF = 'hf_' + 'AbCdEfGhIjKlMnOpQrStUvWxYz01234567';
const OPENAI = 'sk-proj-' + 'Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56';
const ANTHROPIC = 'sk-ant-api03-' + 'Xy12Zw34Ab56Cd78Ef90Gh12';
const AWS_ID = 'AKIA' + 'Z7Q2XK4MEXAMPLE7';
const AWS_SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCY' + 'EXAMPLEKEY';
const GITHUB = 'ghp_' + 'aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE3fG5';
const GITHUB_PAT = 'github_pat_' + '11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS';
const SLACK = 'xoxb-' + '123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx';
const JWT = 'eyJhbGciOiJIUzI1NiJ9' + '.eyJzdWIiOiIxMjM0NTY3ODkwIn0' + '.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U';
const PEM = '-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n-----END RSA PRIVATE KEY-----';
const GOOGLE = 'AIza' + 'SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q';

test('each secret shape is recognised by its value', () => {
  const shapes: [string, string][] = [
    [HF, 'huggingface-token'],
    [OPENAI, 'openai-key'],
    [ANTHROPIC, 'openai-key'],
    [AWS_ID, 'aws-access-key-id'],
    [GITHUB, 'github-token'],
    [GITHUB_PAT, 'github-token'],
    [SLACK, 'slack-token'],
    [JWT, 'jwt'],
    [PEM, 'private-key'],
    ['-----BEGIN OPENSSH PRIVATE KEY-----', 'private-key'],
    [GOOGLE, 'google-api-key'],
    ['Authorization: Bearer 7f3Kq9ZpL2mX8vR4tY6wB1nC5', 'bearer-token'],
    [`export HF_TOKEN=${HF}`, 'huggingface-token'],
    [`aws_secret_access_key = ${AWS_SECRET}`, 'aws-secret-access-key'],
    [`--hf-token ${HF}`, 'huggingface-token'],
  ];
  for (const [value, kind] of shapes) assert.equal(secretShape(value), kind, value.slice(0, 20));
});

test('the AWS secret shape counts only next to an access key id', () => {
  assert.equal(secretShape(AWS_SECRET), undefined, 'alone, 40 base64 characters are just base64');
  assert.equal(redactSecrets(`${AWS_ID}:${AWS_SECRET}`), '<redacted:aws-access-key-id>:<redacted:aws-secret-access-key>');
});

test('look-alikes are not secrets', () => {
  const sha256 = createHash('sha256').update('x').digest('hex');
  const notSecrets = [
    sha256,
    `sha256:${sha256}`,
    'ghcr.io/tunepipe/runtime@sha256:' + sha256,
    '8afb486c1db24fe5011ec46dfbe5b5dccdb575c2', // a git SHA (model revision)
    'a'.repeat(40),
    'sk-llama3-fintech-serve-7a0b8e6c-d1f2a3b4c5', // a lower-case Kubernetes name
    'task-runner-abcdefghijklmnop1234567890',
    'hf_hub_enable_hf_transfer',
    'HF_HUB_ENABLE_HF_TRANSFER=1',
    'hf://datasets/org/name@0123456789abcdef/data.jsonl',
    'hf_' + 'abcdefghijklmnopqrstuvwxyzabcdef', // one case only: a name, not a token
    'curl -H "Authorization: Bearer ${VLLM_API_KEY}" http://localhost:8000/v1/models',
    'Authorization: Bearer $(cat /var/run/secrets/token)',
    'Bearer token required on /v1/*',
    'AKIA is the prefix of AWS access key ids',
    '123e4567-e89b-12d3-a456-426614174000',
    'eyJhbGciOiJIUzI1NiJ9', // a lone base64 JSON object is not a token
    'sk-test-3f9c2a7e',
    '-----BEGIN CERTIFICATE-----',
    'meta-llama/Meta-Llama-3-8B-Instruct',
  ];
  for (const value of notSecrets) assert.equal(secretShape(value), undefined, value);
});

test('gzip+base64 payloads (how datasets travel in ConfigMaps) do not match', () => {
  for (let i = 0; i < 200; i++) {
    const payload = gzipSync(randomBytes(4096)).toString('base64');
    assert.equal(secretShape(payload), undefined, payload.slice(0, 60));
  }
});

test('redactSecrets replaces every occurrence and keeps the rest of the text', () => {
  assert.equal(redactSecrets(`token ${HF} and again ${HF}.`), 'token <redacted:huggingface-token> and again <redacted:huggingface-token>.');
  assert.equal(redactSecrets('Authorization: Bearer 7f3Kq9ZpL2mX8vR4tY6wB1nC5'), 'Authorization: Bearer <redacted:bearer-token>');
  assert.equal(redactSecrets(`key:\n${PEM}\nrest`), 'key:\n<redacted:private-key>\nrest');
  assert.equal(redactSecrets(`Bearer ${JWT}`), 'Bearer <redacted:jwt>', 'one redaction for overlapping shapes');
  assert.equal(redactSecrets('nothing here'), 'nothing here');
});

test('scanForSecrets walks objects and arrays and never repeats the secret', () => {
  const definition = {
    name: 'leaky',
    stages: [
      { name: 'fetch-model', options: { revision: '8afb486c1db24fe5011ec46dfbe5b5dccdb575c2', env: [{ name: 'TOKEN_NAME', value: 'hub-token' }] } },
      { name: 'convert', options: { templateVars: { name: 'Bot', author: HF } } },
      { name: 'serve', options: { args: { 'lora-modules': [`a=${OPENAI}`] } } },
    ],
  };
  const issues = scanForSecrets(definition, 'pipeline');
  assert.deepEqual(issues.map((i) => [i.code, i.path, i.value]), [
    ['secret.literal', 'pipeline.stages[1].options.templateVars.author', '<redacted>'],
    ['secret.literal', 'pipeline.stages[2].options.args.lora-modules[0]', '<redacted>'],
  ]);
  assert.match(issues[0]!.message, /a Hugging Face access token written as a literal/);
  for (const issue of issues) {
    const shown = formatIssue(issue) + JSON.stringify(issue);
    assert.ok(!shown.includes(HF) && !shown.includes(OPENAI), shown);
  }
  const skipped = scanForSecrets(definition, 'pipeline', { skip: (p) => p.endsWith('.templateVars') });
  assert.deepEqual(skipped.map((i) => i.path), ['pipeline.stages[2].options.args.lora-modules[0]']);
  // A cycle is walked once.
  const cyclic: Record<string, unknown> = { token: GITHUB };
  cyclic['self'] = cyclic;
  assert.equal(scanForSecrets(cyclic, 'x').length, 1);
});

test('redactIssue removes secrets from message, value and fix, and keeps clean issues as they are', () => {
  const leaky = { code: 'args.type', path: 'stages.sft.args.hub', message: `must be an integer, got "${HF}"`, value: { given: [HF, 3] }, fix: `remove ${HF}` };
  const clean = redactIssue(leaky);
  assert.deepEqual(clean, {
    code: 'args.type',
    path: 'stages.sft.args.hub',
    message: 'must be an integer, got "<redacted:huggingface-token>"',
    value: { given: ['<redacted:huggingface-token>', 3] },
    fix: 'remove <redacted:huggingface-token>',
  });
  const fine = { code: 'x.y', path: 'a', message: 'fine', value: { n: 1 } };
  assert.equal(redactIssue(fine), fine);
});

// The compiled output of every pipeline of the repo, byte for byte: test/manifests.test.ts holds these
// golden files equal to what synth compiles (with the repo's datasets loaded into the context).
const root = fileURLToPath(new URL('../../..', import.meta.url));
const pipelines = readdirSync(join(root, 'pipelines')).filter((name) => readdirSync(join(root, 'pipelines', name)).includes('pipeline.ts')).sort();

test("every pipeline's compiled output is there to scan", () => {
  assert.ok(pipelines.includes('llama3-fintech'), `found ${pipelines.join(', ')}`);
  for (const name of pipelines) assert.ok(readdirSync(join(root, 'pipelines', name)).includes('dist'), `pipelines/${name} has no dist/ (tunepipe synth ${name})`);
});

for (const name of pipelines) {
  test(`${name}: no object of the compiled pipeline holds a secret-shaped value`, () => {
    const dir = join(root, 'pipelines', name, 'dist');
    let objects = 0;
    let strings = 0;
    const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
    for (const file of files) {
      for (const doc of parseAllDocuments(readFileSync(join(dir, file), 'utf8'))) {
        const object: unknown = doc.toJS();
        objects++;
        JSON.stringify(object, (_k, v: unknown) => (typeof v === 'string' ? (strings++, v) : v));
        assert.deepEqual(scanForSecrets(object, `${name}/${file}`), [], file);
      }
    }
    // The scan saw the whole pipeline: every file parsed to at least one object, and a real pipeline's worth of text.
    assert.ok(files.length >= 5 && objects >= files.length && strings > 100, `${files.length} files, ${objects} objects, ${strings} strings`);
  });
}

// SecretRefs against the Secrets the cluster stack creates: one naming scheme, and a warning for
// any reference outside it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { check, CLUSTER_SECRET_KEYS, definePipeline, formatIssues, LLAMA3_8B, PLATFORM_SECRETS, type Issue, type SecretRef } from '../src/index.ts';
import { context } from './fixtures.ts';

const known = { ...context, knownSecrets: CLUSTER_SECRET_KEYS };

function withRefs(refs: { token?: SecretRef; apiKey?: SecretRef; credentials?: { secretName: string } }) {
  return definePipeline({ name: 'refs' }, (p) => {
    const base = refs.credentials
      ? p.baseModel({ uri: 's3://models/llama3', version: 'v1', template: 'llama3', architecture: LLAMA3_8B, credentials: refs.credentials })
      : p.baseModel({ hub: 'huggingface', id: 'meta-llama/Meta-Llama-3-8B-Instruct', revision: '8afb486c1db24fe5011ec46dfbe5b5dccdb575c2', template: 'llama3', architecture: LLAMA3_8B, ...(refs.token ? { token: refs.token } : {}) });
    const data = p.convert({ sources: ['identity'], cutoffLen: 1024 });
    const adapter = p.sft({ model: base, train: data.train, args: { cutoff_len: 1024, save_steps: 0.25 } });
    p.serve({ model: p.merge({ adapter }), ...(refs.apiKey ? { apiKey: refs.apiKey } : {}) });
  });
}

const unknown = (issues: Issue[]) => issues.filter((i) => i.code === 'secret.unknown');

test('the Secrets infra/cluster creates pass: PLATFORM_SECRETS is the one naming scheme', () => {
  const issues = check(withRefs({ token: { secretName: PLATFORM_SECRETS.hubTokens.secretName, key: PLATFORM_SECRETS.hubTokens.huggingface }, apiKey: PLATFORM_SECRETS.vllmApiKey }), known);
  assert.deepEqual(unknown(issues), [], formatIssues(issues));
  assert.deepEqual(CLUSTER_SECRET_KEYS, { 'tunepipe-hub-tokens': ['HF_TOKEN', 'MODELSCOPE_API_TOKEN'], 'tunepipe-vllm-api-key': ['VLLM_API_KEY'] });
});

test('a Secret name the cluster stack does not create is a warning that names the likely one', () => {
  const issues = unknown(check(withRefs({ apiKey: { secretName: 'tunepipe-vllm', key: 'api-key' } }), known));
  assert.equal(issues.length, 1, formatIssues(issues));
  assert.equal(issues[0]!.severity, 'warning');
  assert.equal(issues[0]!.path, 'stages.serve.apiKey.secretName');
  assert.equal(issues[0]!.value, 'tunepipe-vllm');
  assert.match(issues[0]!.fix!, /did you mean 'tunepipe-vllm-api-key'\?/);
});

test('a key the Secret does not hold is a warning listing the keys it has', () => {
  const issues = unknown(check(withRefs({ token: { secretName: 'tunepipe-hub-tokens', key: 'hf_token' } }), known));
  assert.equal(issues.length, 1, formatIssues(issues));
  assert.equal(issues[0]!.path, 'stages.fetch-model.token.key');
  assert.match(issues[0]!.message, /has no key 'hf_token' \(it has HF_TOKEN, MODELSCOPE_API_TOKEN\)/);
  assert.match(issues[0]!.fix!, /did you mean 'HF_TOKEN'\?/);
});

test('a Secret read whole (object-store credentials) is checked by name', () => {
  const issues = unknown(check(withRefs({ credentials: { secretName: 'model-store' } }), known));
  assert.deepEqual(issues.map((i) => [i.path, i.value]), [['stages.fetch-model.credentials.secretName', 'model-store']]);
});

test('without knownSecrets in the context nothing is checked against a cluster', () => {
  assert.deepEqual(unknown(check(withRefs({ apiKey: { secretName: 'my-own', key: 'k' } }), context)), []);
});

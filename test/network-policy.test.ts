// The workload namespace's NetworkPolicies (infra/cluster) against the pods the examples compile to:
// every pod is denied by default, only downloading stages reach the internet (never the cloud
// metadata endpoint), and only the served model takes connections.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import type { LabelSelector } from 'kubernetes-types/meta/v1.js';
import { workloadNetworkPolicies } from '../infra/cluster/src/platform-objects.ts';
import { discoverPipelines } from '../packages/workspace/src/repo.ts';
import { synthPipeline } from '../packages/workspace/src/synth.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const policies = workloadNetworkPolicies('tunepipe');

function selects(selector: LabelSelector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    if (e.operator === 'In' && !(e.values ?? []).includes(labels[e.key] ?? '\u0000')) return false;
    if (e.operator === 'Exists' && !(e.key in labels)) return false;
  }
  return true;
}

test('deny by default, DNS for all, HTTPS out only for downloads and never to the metadata endpoint', () => {
  const deny = policies.find((p) => p.metadata.name === 'tunepipe-default-deny')!;
  assert.deepEqual(deny.spec, { podSelector: {}, policyTypes: ['Ingress', 'Egress'] });
  const downloads = policies.find((p) => p.metadata.name === 'tunepipe-downloads')!;
  assert.deepEqual(downloads.spec.egress?.[0]?.to?.[0]?.ipBlock, { cidr: '0.0.0.0/0', except: ['169.254.169.254/32'] });
});

for (const name of discoverPipelines(root)) {
  test(`${name}: each pod gets exactly the network it needs`, async () => {
    const { compiled } = await synthPipeline(root, name);
    for (const object of compiled.objects) {
      const template = (object as { spec?: { template?: { metadata?: { labels?: Record<string, string> } } } }).spec?.template;
      if (!template) continue;
      const labels = template.metadata?.labels ?? {};
      const applying = policies.filter((p) => selects(p.spec.podSelector, labels)).map((p) => p.metadata.name).sort();
      const kind = labels['tunepipe.dev/stage-kind'];
      const component = labels['app.kubernetes.io/component'];
      const expected = ['tunepipe-default-deny', 'tunepipe-dns'];
      if (kind === 'fetch-model' || kind === 'convert') expected.push('tunepipe-downloads');
      if (component === 'serve') expected.push('tunepipe-serve');
      if (component === 'verify') expected.push('tunepipe-verify');
      if (labels['tunepipe.dev/gang'] !== undefined) expected.push('tunepipe-training-gang');
      assert.deepEqual(applying, expected.sort(), `${object.kind}/${object.metadata?.name}`);
    }
  });
}

test('the ranks of a training gang reach each other on any TCP port, and nothing else does', () => {
  const gang = policies.find((p) => p.metadata.name === 'tunepipe-training-gang')!;
  const rank = { 'tunepipe.dev/stage-kind': 'sft', 'tunepipe.dev/gang': 'llama3-70b-lora-sft-abc123' };
  const single = { 'tunepipe.dev/stage-kind': 'sft' };
  assert.ok(selects(gang.spec.podSelector, rank));
  assert.ok(!selects(gang.spec.podSelector, single), 'a single-pod stage keeps default deny');
  for (const rule of [gang.spec.ingress?.[0], gang.spec.egress?.[0]]) {
    const peers = [...((rule as { from?: unknown[] })?.from ?? []), ...((rule as { to?: unknown[] })?.to ?? [])] as { podSelector?: LabelSelector; namespaceSelector?: unknown; ipBlock?: unknown }[];
    assert.equal(peers.length, 1);
    assert.equal(peers[0]!.namespaceSelector, undefined, 'same namespace only');
    assert.equal(peers[0]!.ipBlock, undefined);
    assert.ok(selects(peers[0]!.podSelector!, rank) && !selects(peers[0]!.podSelector!, single));
    assert.deepEqual(rule?.ports, [{ protocol: 'TCP' }]);
  }
});

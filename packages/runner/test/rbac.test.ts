// The runner's Role (infra/cluster RUNNER_RULES) is exactly what the runner uses: every verb it
// grants is one the runner's own client calls make in a run, status, logs and cancel, and the
// double refuses (403) anything the Role does not grant.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { RUNNER_RULES } from '../../../infra/cluster/src/platform-objects.ts';
import { cancelRun, clusterStatus, streamStageLogs } from '../src/cluster/inspect.ts';
import { makePipeline } from './fixtures/pipeline.ts';
import { startRun, withKube } from './faults-support.ts';
import type { FakeKubeApi } from './doubles/fake-kube-api.ts';

const RESOURCE = /^\/(?:api\/v1|apis\/([a-z0-9.-]+)\/v1(?:beta\d+)?)\/namespaces\/[^/]+\/([a-z]+)(?:\/([^/]+))?(?:\/(log))?$/;

/** `group/resource:verb` for each request, as the API server's authorizer names it. */
function verbsOf(kube: FakeKubeApi): Set<string> {
  const out = new Set<string>();
  for (const r of kube.requests) {
    const m = RESOURCE.exec(r.path);
    if (!m) continue;
    const [, group = '', plural, name, log] = m;
    const resource = log ? `${plural}/log` : plural;
    const watch = /[?&]watch=(true|1)/.test(r.query);
    const verbs =
      r.method === 'GET' ? [name ? 'get' : watch ? 'watch' : 'list']
      : r.method === 'POST' ? ['create']
      : r.method === 'PUT' ? ['update']
      : r.method === 'DELETE' ? ['delete']
      // Server-side apply of an object that does not exist yet is authorized as create too.
      : r.method === 'PATCH' ? (r.contentType?.includes('apply-patch') ? ['patch', 'create'] : ['patch'])
      : [];
    for (const verb of verbs) out.add(`${group}/${resource}:${verb}`);
  }
  return out;
}

function granted(): Set<string> {
  return new Set(RUNNER_RULES.flatMap((rule) => rule.apiGroups.flatMap((g) => rule.resources.flatMap((res) => rule.verbs.map((v) => `${g}/${res}:${v}`)))));
}

test("the runner Role grants exactly the verbs the runner's calls use", async () => {
  const used = new Set<string>();
  await withKube({ rbac: RUNNER_RULES }, async (kube) => {
    const pipeline = makePipeline();
    const { rec, done } = startRun(pipeline, kube);
    assert.equal((await done).outcome, 'succeeded', rec.output());
    const options = { kubeConfig: kube.kubeConfig(), namespace: pipeline.namespace };
    await clusterStatus(pipeline, options);
    await streamStageLogs(pipeline.pipeline, 'sft', { ...options, out: new PassThrough() });
    await cancelRun(pipeline.pipeline, { ...options, scaleServe: true });
    assert.deepEqual(kube.responses.filter((r) => r.status === 403), [], 'nothing the runner does is refused');
    for (const verb of verbsOf(kube)) used.add(verb);
  });
  const unused = [...granted()].filter((g) => !used.has(g)).sort();
  assert.deepEqual(unused, [], `granted but never used by the runner: ${unused.join(', ')}`);
});

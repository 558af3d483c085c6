import { z } from 'zod';
import { architectureSchema, MAX_TEXT, text } from './schema.ts';
import { workDirOf } from '../artifacts/protocol.ts';
import { ARTIFACTS_MOUNT, type ResolvedContext } from '../context.ts';
import { modelSourceOf, type BaseModelOptions, type HubModelOptions, type ObjectStoreModelOptions, type SecretRef } from '../dsl.ts';
import { objectStoreEnv, secretEnv } from '../pods.ts';
import { architectureDifferences, architectureFromConfig, localModelDigest, parseObjectStoreUri, requireArchitecture, uploadFolder, type ModelSource } from '../model/source.ts';
import { catalogueIds, catalogueModel } from '../model/catalogue.ts';
import { suggest, type Issue } from '../issues.ts';
import { checkSecretRef, checkTemplate, plannerBase, resolvedStage } from './common.ts';
import type { ResolveEnv, StageKindModule } from './types.ts';

const MODEL_SOURCE_KEYS = ['hub', 'path', 'artifacts', 'uri'] as const;
const MUTABLE_REVISIONS = new Set(['main', 'master', 'head', 'latest', 'dev', 'develop']);
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** `/artifacts/models/x` and `models/x` name the same folder. */
export function artifactsRelative(path: string): string {
  return path.replace(new RegExp(`^${ARTIFACTS_MOUNT}/`), '').replace(/\/+$/, '');
}

/**
 * What a fetch-model stage's hash covers (the model's identity, never a machine's path) and its
 * config. Hub models keep the config they always had, so their stage names do not change.
 */
function fetchedModel(source: ModelSource, ctx: ResolvedContext): { identity: string; config: Record<string, unknown> } {
  switch (source.kind) {
    case 'hub':
      return { identity: `${source.hub}:${source.id}@${source.revision}`, config: { hub: source.hub, id: source.id, revision: source.revision } };
    case 'local': {
      const digest = localModelDigest(source, ctx) ?? 'missing';
      return { identity: `local:sha256:${digest}`, config: { source: 'local', digest } };
    }
    case 'artifacts': {
      const path = artifactsRelative(source.path);
      return { identity: `artifacts:${path}@${source.version}`, config: { source: 'artifacts', path, version: source.version } };
    }
    case 'object-store':
      return { identity: `${source.uri.replace(/\/+$/, '')}@${source.version}`, config: { source: 'object-store', uri: source.uri.replace(/\/+$/, ''), version: source.version } };
  }
}

export const fetchModel: StageKindModule<'fetch-model'> = {
  kind: 'fetch-model',
  produces: 'base-model',
  configFormat: 'json',
  // One object for the four sources: which combination names a model is checkModelSource's rule.
  options: z.strictObject({
    name: text().optional(),
    image: text().optional(),
    template: z.string().max(200),
    architecture: architectureSchema.optional(),
    hub: z.string().max(200).optional(),
    id: z.string().max(MAX_TEXT).optional(),
    revision: z.string().max(200).optional(),
    token: z.strictObject({ secretName: text(), key: text() }).optional(),
    path: text().optional(),
    digest: z.string().max(200).optional(),
    artifacts: text().optional(),
    version: z.string().max(MAX_TEXT).optional(),
    uri: text().optional(),
    credentials: z.strictObject({ secretName: text() }).optional(),
  }),
  toolEnv(stage, env) {
    const o = stage.spec.options;
    const source = modelSourceOf(o);
    if (source.kind === 'hub') {
      // Optional: public models need no token, and the cluster stack writes only the keys it was given.
      return secretEnv(source.hub === 'huggingface' ? 'HF_TOKEN' : 'MODELSCOPE_API_TOKEN', (o as HubModelOptions).token ?? env.ctx.defaultHubToken, { optional: true });
    }
    return source.kind === 'object-store' ? objectStoreEnv(source.uri, (o as ObjectStoreModelOptions).credentials) : [];
  },
  resolve(spec, env) {
    const o = spec.options;
    const path = `stages.${spec.name}`;
    checkTemplate(o.template, `${path}.template`, env.add);
    const sound = checkModelSource(o, path, env.ctx, env.add);
    const source = modelSourceOf(o);
    const fetched = sound ? fetchedModel(source, env.ctx) : { identity: 'invalid', config: {} };
    return resolvedStage(spec, {
      // Local and artifacts-volume folders are copied and verified by our own CLI; hubs and object stores need their clients.
      image: o.image ?? (source.kind === 'local' || source.kind === 'artifacts' ? env.ctx.images.runtime : env.ctx.images.fetch),
      dependsOn: [],
      identities: { model: fetched.identity },
      args: fetched.config,
    });
  },
  plannerInput(stage, env) {
    const o = stage.spec.options;
    return { ...plannerBase(stage), kind: 'fetch-model', architecture: requireArchitecture({ source: modelSourceOf(o), ...(o.architecture ? { architecture: o.architecture } : {}), stage: stage.name }, env.ctx) };
  },
  config(stage) {
    return { ...stage.args };
  },
  command(stage, paths, configFile) {
    const m = modelSourceOf(stage.spec.options);
    const work = workDirOf(paths.self);
    switch (m.kind) {
      case 'hub':
        return m.hub === 'huggingface'
          ? { mode: 'rename', argv: ['huggingface-cli', 'download', m.id, '--revision', m.revision, '--local-dir', work] }
          : { mode: 'rename', argv: ['modelscope', 'download', '--model', m.id, '--revision', m.revision, '--local_dir', work] };
      // The user (or `tunepipe run --target local`) puts the folder at its content-named upload path;
      // the Job verifies every file against the digest the stage hash covers, then copies it.
      case 'local':
        return { mode: 'rename', argv: ['tunepipe', 'fetch-model', '--config', configFile, '--from', `${ARTIFACTS_MOUNT}/${uploadFolder(String(stage.args['digest']))}`, '--out', work] };
      case 'artifacts':
        return { mode: 'rename', argv: ['tunepipe', 'fetch-model', '--config', configFile, '--from', `${ARTIFACTS_MOUNT}/${artifactsRelative(m.path)}`, '--out', work] };
      case 'object-store':
        return { mode: 'rename', argv: ['tunepipe-fetch-model', '--uri', m.uri.replace(/\/+$/, ''), '--version', m.version, '--dest', work] };
    }
  },
};

/** Where a base model comes from, and whether what pins its content is there. Returns whether the source is usable. */
function checkModelSource(o: BaseModelOptions, path: string, ctx: ResolveEnv['ctx'], add: (i: Issue) => void): boolean {
  const raw = o as unknown as Record<string, unknown>;
  const given = MODEL_SOURCE_KEYS.filter((k) => raw[k] !== undefined);
  if (given.length !== 1) {
    add({ code: 'model.source', path, ...(given.length > 0 ? { value: given } : {}), message: given.length === 0 ? 'names no model' : `names ${given.length} model sources (${given.join(', ')}); a base model comes from exactly one`, fix: 'keep one of { hub, id, revision }, { path }, { artifacts, version } or { uri, version }' });
    return false;
  }
  const source = modelSourceOf(o);
  switch (source.kind) {
    case 'hub': {
      const revision = typeof source.revision === 'string' ? source.revision.trim() : '';
      if (MUTABLE_REVISIONS.has(revision.toLowerCase()) || revision === '') {
        add({ code: 'model.revision', path: `${path}.revision`, value: source.revision, message: 'is a branch, not a pinned revision: the same pipeline could fetch different weights tomorrow and its stage hashes would not notice', fix: 'pin a commit hash (or an immutable tag) of the model repository', severity: revision === '' ? 'error' : 'warning' });
      }
      if (source.hub !== 'huggingface' && source.hub !== 'modelscope') {
        add({ code: 'model.hub', path: `${path}.hub`, value: source.hub, message: 'unknown model hub', fix: "use 'huggingface' or 'modelscope'" });
      }
      if (typeof source.id !== 'string' || source.id.trim() === '') add({ code: 'model.id', path: `${path}.id`, value: source.id, message: 'names no repository on the hub', fix: "the repository id, e.g. 'meta-llama/Meta-Llama-3-8B-Instruct'" });
      else checkHubArchitecture(o, source.hub, source.id, path, add);
      const token = (o as { token?: SecretRef }).token;
      if (token) checkSecretRef(token, `${path}.token`, add);
      break;
    }
    case 'local': {
      const local = ctx.models[source.path];
      if (source.digest !== undefined && !SHA256_HEX.test(source.digest)) {
        add({ code: 'model.digest', path: `${path}.digest`, value: source.digest, message: 'is not a sha256 (64 lower-case hex digits)', fix: 'remove it (tunepipe computes it from the folder) or paste the digest `tunepipe plan` prints' });
      }
      if (!local?.found) {
        // Without the folder only a declared digest and architecture can name the model (CI).
        if (source.digest === undefined || !o.architecture) {
          add({ code: 'model.path', path: `${path}.path`, value: source.path, message: 'no model folder here (a relative path starts at the repository root)', fix: source.digest === undefined ? 'fix the path; to compile where the folder is absent (CI), declare its digest and architecture' : 'fix the path, or declare architecture too so it can be compiled without the folder' });
        }
        return true;
      }
      if (source.digest !== undefined && local.digest !== undefined && source.digest !== local.digest) {
        add({ code: 'model.digest', path: `${path}.digest`, value: source.digest, message: `the folder's content digest is ${local.digest}: its files changed since the digest was declared`, fix: `set digest to '${local.digest}' if the new files are intended, else restore the folder` });
      }
      if (local.hasWeights === false) {
        add({ code: 'model.weights', path: `${path}.path`, value: source.path, message: 'the folder has no weights (*.safetensors or *.bin)', fix: "point path at the folder save_pretrained wrote (config.json next to model*.safetensors)" });
      }
      if (local.hasTokenizer === false) {
        add({ code: 'model.tokenizer', path: `${path}.path`, value: source.path, message: 'the folder has no tokenizer (tokenizer.json, tokenizer.model or tokenizer_config.json); LLaMA-Factory loads it from the model folder', fix: 'save the tokenizer into the folder (tokenizer.save_pretrained(folder))' });
      }
      if (!local.config) {
        if (!o.architecture) add({ code: 'model.config', path: `${path}.path`, value: `${source.path}/config.json`, message: `config.json ${local.configError ?? 'is missing'}, so the architecture cannot be read`, fix: "copy the model's config.json into the folder, or declare architecture" });
        return true;
      }
      const read = architectureFromConfig(local.config, local.parameterCount);
      if (!o.architecture) {
        for (const p of read.problems) add({ code: 'model.config', path: `${path}.path`, value: `config.json: ${p.field}`, message: `${p.field} ${p.message}; the planner and checks need it`, fix: `fix ${p.field} in ${source.path}/config.json, or declare architecture` });
      } else if (read.architecture) {
        const differ = architectureDifferences(o.architecture, read.architecture);
        if (differ.length > 0) {
          add({ code: 'model.architecture', path: `${path}.architecture`, value: differ.map((k) => `${k}: declared ${String(o.architecture![k])}, config.json ${String(read.architecture![k])}`).join('; '), message: "the declared architecture is not the folder's", fix: 'remove architecture: tunepipe reads it from config.json' });
        }
      }
      break;
    }
    case 'artifacts': {
      if (!o.architecture) add(architectureUnknown(path, 'a folder on the artifacts volume'));
      const rel = typeof source.path === 'string' ? source.path.replace(/^\/artifacts\//, '') : '';
      if (rel.startsWith('/') || rel.trim() === '' || rel.split('/').includes('..') || !/^[\w.@+/-]+$/.test(rel)) {
        add({ code: 'model.artifacts', path: `${path}.artifacts`, value: source.path, message: 'is not a folder on the artifacts volume', fix: "a path relative to the volume's root, e.g. 'models/llama3-8b-instruct' (no '..', no absolute paths outside /artifacts)" });
      } else if (rel === 'uploads' || rel.startsWith('uploads/')) {
        add({ code: 'model.artifacts', path: `${path}.artifacts`, value: source.path, message: "uploads/ holds the local models tunepipe verifies by digest", fix: "use baseModel({ path }) for a local folder, or keep your models under another folder, e.g. 'models/'" });
      }
      checkModelVersion(source.version, 'artifacts', path, add);
      break;
    }
    case 'object-store': {
      if (typeof source.uri !== 'string' || !parseObjectStoreUri(source.uri)) {
        add({ code: 'model.uri', path: `${path}.uri`, value: source.uri, message: 'is not an object-store folder tunepipe can fetch', fix: "use s3://<bucket>/<prefix> or gs://<bucket>/<prefix> (the folder holding config.json and the weights)" });
        return false;
      }
      checkModelVersion(source.version, 'object-store', path, add);
      if (!o.architecture) add(architectureUnknown(path, 'a folder in an object store'));
      const credentials = (o as { credentials?: { secretName: string } }).credentials;
      if (credentials) checkSecretRef({ secretName: credentials.secretName, key: 'credentials' }, `${path}.credentials`, add);
      break;
    }
  }
  return true;
}

function checkModelVersion(version: unknown, kind: 'artifacts' | 'object-store', path: string, add: (i: Issue) => void): void {
  if (typeof version === 'string' && version.trim() !== '') return;
  add({
    code: 'model.version',
    path: `${path}.version`,
    ...(version !== undefined ? { value: version } : {}),
    message: 'is required: tunepipe cannot see the files at plan time, so the declared version is what tells the stages that the weights changed (without it they would keep results made from the old ones)',
    fix:
      kind === 'object-store'
        ? "declare the store's identity of the content: the S3 object version id or ETag (aws s3api head-object … --query ETag), or the GCS generation (gcloud storage objects describe … --format='value(generation)')"
        : 'declare what identifies the folder, e.g. the sha256 of its SHA256SUMS (sha256sum SHA256SUMS)',
  });
}

/**
 * A hub model's architecture comes from the declaration or from the catalogue; without either the
 * planner cannot size a stage. A catalogue model's template is LLaMA-Factory's for it.
 */
function checkHubArchitecture(o: BaseModelOptions, hub: HubModelOptions['hub'], id: string, path: string, add: (i: Issue) => void): void {
  const known = catalogueModel(id, hub);
  if (!o.architecture && !known) {
    const ids = catalogueIds(hub);
    const lower = id.trim().toLowerCase();
    // A suffix added or dropped ('-Instruct') is a nearer miss than the few edits between sizes.
    const contained = ids.filter((known) => lower.includes(known.toLowerCase()) || known.toLowerCase().includes(lower));
    const near = [...new Set([...contained, ...suggest(id, ids)])].slice(0, 3);
    add({
      ...architectureUnknown(path, `'${id}'`),
      path: `${path}.architecture`,
      value: id,
      message: `${hub} model '${id}' is not in tunepipe's model catalogue and declares no architecture: the planner cannot size its stages`,
      fix: `declare architecture: fromConfigJson(<the model's config.json>) or pick a catalogue model (MODEL_CATALOGUE)${near.length > 0 ? `: did you mean ${near.map((n) => `'${n}'`).join(', ')}?` : ''}`,
    });
  }
  if (known && typeof o.template === 'string' && o.template !== known.template) {
    add({ code: 'model.template', path: `${path}.template`, value: o.template, severity: 'warning', message: `LLaMA-Factory trains and serves ${known.huggingface} with the '${known.template}' template; '${o.template}' formats its conversations differently from how the model was tuned`, fix: `template: '${known.template}'` });
  }
}

function architectureUnknown(path: string, what: string): Issue {
  return {
    code: 'model.architecture-unknown',
    path: `${path}.architecture`,
    message: `${what} has no declared architecture: tunepipe cannot see its config.json at plan time, and the planner needs its shape`,
    fix: "declare architecture: fromConfigJson(<the model's config.json>)",
  };
}

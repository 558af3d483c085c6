// `tunepipe fetch-model`, the fetch-model Job's verify-and-copy: it must accept exactly the folder
// whose content digest the workspace computed at plan time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { folderDigest } from '@tunepipe/workspace';
import { fetchModel } from '../src/commands/fetch-model.ts';
import { UserError } from '../src/errors.ts';

/** The files fetch-model copies, plus a download cache it must leave behind. Contents do not matter here. */
async function uploadedFolder(dir: string): Promise<void> {
  await mkdir(join(dir, '.cache', 'huggingface'), { recursive: true });
  await writeFile(join(dir, 'config.json'), '{"model_type":"llama"}');
  await writeFile(join(dir, 'tokenizer.json'), '{"model":{}}');
  await writeFile(join(dir, 'model.safetensors'), 'weights');
  await writeFile(join(dir, '.cache', 'huggingface', 'download.lock'), 'lock');
}

test('tunepipe fetch-model: verifies the upload against the digest, then copies only the model files', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tunepipe-model-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const upload = join(dir, 'uploads', 'x');
  await uploadedFolder(upload);
  const { digest } = await folderDigest(upload);
  await writeFile(join(dir, 'fetch.json'), JSON.stringify({ source: 'local', digest }));
  const lines: string[] = [];
  await fetchModel({ config: join(dir, 'fetch.json'), from: upload, out: join(dir, 'out.partial') }, (l) => lines.push(l));
  assert.deepEqual((await readdir(join(dir, 'out.partial'))).sort(), ['config.json', 'model.safetensors', 'tokenizer.json']);
  assert.match(lines[0]!, new RegExp(`verified \\(3 files, .* sha256 ${digest}\\)`));

  await writeFile(join(upload, 'config.json'), '{"model_type":"llama","hidden_size":16}');
  await assert.rejects(fetchModel({ config: join(dir, 'fetch.json'), from: upload, out: join(dir, 'out2') }, () => {}), (e: unknown) => {
    assert.ok(e instanceof UserError);
    assert.match(e.message, /is not the one the pipeline names/);
    assert.match(e.issues[0]!.message, new RegExp(`the pipeline was compiled for ${digest}`));
    return true;
  });
  await assert.rejects(fetchModel({ config: join(dir, 'fetch.json'), from: join(dir, 'nothing'), out: join(dir, 'out3') }, () => {}), (e: unknown) => {
    assert.ok(e instanceof UserError);
    assert.match(e.issues[0]!.fix!, /kubectl cp <folder>/);
    return true;
  });
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { clipRedacted, parseGeneratedPredictions, postDeployCheck, REDACTED_KEY, redactText, writeVerifyResults } from '../src/index.ts';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// 43 characters like the keys of the issue, with the characters JSON and URLs escape.
const KEY = 'tp-9fK2xQ7mZ/4bN+8vR1wL6yH3cJ0dS5gT2aE7uPqX';
assert.equal(KEY.length, 43);

/** Every run of 6 or more consecutive key characters found in `text` (none may be). */
function keyRuns(text: string, key = KEY): string[] {
  const found: string[] = [];
  for (let i = 0; i + 6 <= key.length; i++) if (text.includes(key.slice(i, i + 6))) found.push(key.slice(i, i + 6));
  return found;
}

const FILLER = 'The request was rejected by the authentication middleware; please check the credentials. ';
const filler = (n: number) => FILLER.repeat(Math.ceil(n / FILLER.length)).slice(0, n);
const at = (offset: number, echoed: string, size = 10_240) => `${filler(offset)}${echoed}${filler(size - offset - echoed.length)}`;

/** Ways a server echoes a key: plain, cut short, JSON-escaped, \u-escaped, URL-encoded. */
const ECHOES: Record<string, string> = {
  plain: KEY,
  'first 41 characters': KEY.slice(0, 41),
  'last 30 characters': KEY.slice(-30),
  'JSON with escaped slashes': JSON.stringify(KEY).slice(1, -1).replace(/\//g, '\\/'),
  'JSON \\u escapes': [...KEY].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join(''),
  'URL-encoded': encodeURIComponent(KEY),
  'in a Bearer header': `Authorization: Bearer ${KEY}`,
};

// Around the 160-character cut (the key straddling it), and at the start, middle and end of 10 KB.
const OFFSETS = [0, 100, 130, 140, 150, 155, 159, 160, 161, 5_000, 10_240 - 150];

test('a key echoed anywhere in a 10 KB body never shows, not even partly, whole or cut', () => {
  for (const [how, echoed] of Object.entries(ECHOES)) {
    for (const offset of OFFSETS) {
      const body = at(Math.min(offset, 10_240 - echoed.length), echoed);
      const where = `${how} at ${offset}`;
      assert.deepEqual(keyRuns(redactText(body, [KEY])), [], where);
      const shown = clipRedacted(body, [KEY]);
      assert.deepEqual(keyRuns(shown), [], where);
      assert.ok(shown.length <= 160, where);
      // And a JSON error body as vLLM/FastAPI would send it.
      const json = JSON.stringify({ object: 'error', message: `invalid key ${KEY}`, detail: body });
      assert.deepEqual(keyRuns(clipRedacted(json, [KEY])), [], `${where} (JSON)`);
      assert.deepEqual(keyRuns(redactText(json, [KEY])), [], `${where} (JSON, whole)`);
    }
  }
  // The rest of the text is kept as it was.
  assert.equal(redactText(`before ${KEY} after`, [KEY]), `before ${REDACTED_KEY} after`);
  assert.equal(redactText(`a ${KEY.slice(5, 13)} b ${KEY.slice(20, 27)} c`, [KEY]), `a ${REDACTED_KEY} b ${KEY.slice(20, 27)} c`);
  // A cut never ends inside a marker.
  assert.doesNotMatch(clipRedacted(`${filler(150)}${KEY}`, [KEY]), /<redac(?!ted:api-key>)/);
});

test('redaction leaves ordinary text alone and catches secret-shaped values with no key given', () => {
  const plain = 'POST /v1/chat/completions → 400: {"object":"error","message":"max_tokens is too large"}';
  assert.equal(redactText(plain, [KEY]), plain);
  assert.equal(clipRedacted(`  a\n\n b  `), 'a b');
  assert.equal(clipRedacted('x'.repeat(200)), `${'x'.repeat(159)}…`);
  // Shapes core knows (here a Hugging Face token), redacted before the cut: no piece survives.
  const token = 'hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789';
  for (const offset of [0, 140, 150, 158]) {
    const shown = clipRedacted(`${filler(offset)} ${token} ${filler(300)}`);
    assert.deepEqual(keyRuns(shown, token), [], `hf token at ${offset}`);
  }
  // Short keys are redacted whole only (a 6-character piece of text is not evidence).
  assert.equal(redactText('key abc123 and abc', ['abc123']), `key ${REDACTED_KEY} and abc`);
  // A bad line of an output file is shown as an excerpt, redacted before it is cut.
  for (const offset of [0, 100, 110, 117]) {
    const line = `{"prompt": "${'p'.repeat(offset)} ${token} and more", "predict": oops}`;
    const read = parseGeneratedPredictions(line);
    assert.equal(read.issues.length, 1);
    assert.deepEqual(keyRuns(JSON.stringify(read.issues), token), [], `bad line, token at ${offset}`);
  }
});

/** A server that answers /v1/* with an error body that echoes the key it was sent. */
async function echoingServer(makeBody: (key: string) => string): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url === '/health') {
        res.writeHead(200);
        return res.end();
      }
      const key = (req.headers.authorization ?? '').replace(/^Bearer /, '');
      res.writeHead(req.url === '/v1/models' ? 401 : 400, { 'content-type': 'application/json' });
      res.end(makeBody(key));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

test('verify never shows or writes any piece of a key the server echoes in its error bodies', async () => {
  for (const offset of [0, 118, 150, 5_000, 10_000]) {
    // The first 41 characters at 118 is the case of the issue: cut at 160 before redaction, it leaked.
    const server = await echoingServer((key) => JSON.stringify({ error: at(offset, offset === 118 ? key.slice(0, 41) : key, 10_240) }));
    try {
      const result = await postDeployCheck({
        baseUrl: server.url,
        apiKey: KEY,
        servedModelName: 'm',
        expectName: '小聚',
        testSet: [{ source: 'identity.test', messages: [{ role: 'user', content: 'hi' }], label: 'hello' }],
        gate: { bleu4: { min: 1 } },
      });
      assert.equal(result.passed, false);
      assert.ok(result.checks.find((c) => c.name === 'models')!.detail.startsWith('GET /v1/models → 401: '));
      assert.deepEqual(keyRuns(JSON.stringify(result)), [], `offset ${offset}`);
      const out = await mkdtemp(join(tmpdir(), 'tunepipe-redact-'));
      await writeVerifyResults(out, result);
      for (const file of await readdir(out)) assert.deepEqual(keyRuns(await readFile(join(out, file), 'utf8')), [], `${file} at offset ${offset}`);
    } finally {
      await server.close();
    }
  }
});

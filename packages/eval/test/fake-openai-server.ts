// Test double of vLLM's OpenAI-compatible server: /health, /v1/models, /v1/chat/completions,
// with vLLM's --api-key behaviour (Bearer required on /v1/* only). Records every request.
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeChatMessage {
  readonly role: string;
  readonly content: string;
}

export interface FakeOpenAiOptions {
  readonly models: readonly string[];
  readonly apiKey?: string;
  /** Answer for a chat request; throw to answer 500. */
  readonly reply: (messages: readonly FakeChatMessage[], model: string) => string;
  /** Status of /health. @default 200 */
  readonly healthStatus?: number;
}

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body?: unknown;
}

export interface FakeOpenAiServer {
  readonly url: string;
  readonly requests: RecordedRequest[];
  close(): Promise<void>;
}

export async function fakeOpenAiServer(options: FakeOpenAiOptions): Promise<FakeOpenAiServer> {
  const requests: RecordedRequest[] = [];
  const server = createServer((req, res) => {
    let raw = '';
    req.on('data', (chunk: Buffer) => (raw += chunk.toString('utf8')));
    req.on('end', () => {
      const path = req.url ?? '/';
      const body = raw ? (JSON.parse(raw) as unknown) : undefined;
      requests.push({ method: req.method ?? 'GET', path, headers: req.headers, ...(body !== undefined ? { body } : {}) });
      const send = (status: number, payload?: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(payload === undefined ? '' : JSON.stringify(payload));
      };
      if (path === '/health') return send(options.healthStatus ?? 200);
      if (path.startsWith('/v1/') && options.apiKey && req.headers.authorization !== `Bearer ${options.apiKey}`) {
        return send(401, { error: 'Unauthorized' });
      }
      if (path === '/v1/models' && req.method === 'GET') {
        return send(200, { object: 'list', data: options.models.map((id) => ({ id, object: 'model', owned_by: 'vllm' })) });
      }
      if (path === '/v1/chat/completions' && req.method === 'POST') {
        const { model, messages } = body as { model: string; messages: FakeChatMessage[] };
        if (!options.models.includes(model)) return send(404, { object: 'error', message: `The model \`${model}\` does not exist.` });
        try {
          const content = options.reply(messages, model);
          return send(200, {
            id: `chatcmpl-${requests.length}`,
            object: 'chat.completion',
            model,
            choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
          });
        } catch (error) {
          return send(500, { object: 'error', message: (error as Error).message });
        }
      }
      send(404, { detail: 'Not Found' });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';

const agent = new Agent({ keepAlive: true, maxSockets: 64 });

export interface Reply {
  status: number;
  bytes: number;
  ms: number;
  headers: Record<string, string | string[] | undefined>;
  /** The body, when asked for with `collect`. */
  body?: Buffer;
}

/** One request to 127.0.0.1; the body is read to the end (and dropped unless `collect`) before it resolves. */
export function send(port: number, method: string, path: string, body?: Buffer, headers: Record<string, string> = {}, collect = false): Promise<Reply> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method, path, agent, headers: body ? { 'content-length': String(body.length), ...headers } : headers },
      (res) => {
        let bytes = 0;
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (collect) chunks.push(chunk);
        });
        res.on('end', () => {
          const reply: Reply = { status: res.statusCode ?? 0, bytes, ms: performance.now() - t0, headers: res.headers };
          if (collect) reply.body = Buffer.concat(chunks);
          resolve(reply);
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Fails loudly on an unexpected status (a benchmark of error replies measures nothing). */
export async function sendOk(port: number, method: string, path: string, body?: Buffer, headers: Record<string, string> = {}): Promise<Reply> {
  const r = await send(port, method, path, body, headers);
  if (r.status !== 200) throw new Error(`${method} ${path}: status ${r.status}`);
  return r;
}

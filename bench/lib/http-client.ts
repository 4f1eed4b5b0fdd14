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

export interface PhasedReply extends Reply {
  /** From the start until the client's last body byte was handed to the socket ('finish'). */
  uploadMs: number;
  /** From the reply's headers to its last byte. */
  replyMs: number;
}

/**
 * One request whose body is sent as `parts` (no concatenation), timed by phase: the upload
 * (until the last byte is written: the server has read all but what the loopback socket
 * buffers hold, a few MiB) and the reply (headers to last byte). The body is collected.
 */
export function sendPhased(port: number, method: string, path: string, parts: Buffer[], headers: Record<string, string> = {}): Promise<PhasedReply> {
  const length = parts.reduce((n, p) => n + p.length, 0);
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    let uploaded = NaN;
    const req = request({ host: '127.0.0.1', port, method, path, agent, headers: { 'content-length': String(length), ...headers } }, (res) => {
      const head = performance.now();
      let bytes = 0;
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        chunks.push(chunk);
      });
      res.on('end', () => {
        const end = performance.now();
        resolve({ status: res.statusCode ?? 0, bytes, ms: end - t0, headers: res.headers, body: Buffer.concat(chunks), uploadMs: uploaded - t0, replyMs: end - head });
      });
      res.on('error', reject);
    });
    req.on('finish', () => {
      uploaded = performance.now();
    });
    req.on('error', reject);
    for (const p of parts.slice(0, -1)) req.write(p);
    req.end(parts[parts.length - 1]);
  });
}

/** A multipart/form-data body as parts: one file part per entry of `files`, then the fields. */
export function multipartBody(files: Record<string, Buffer>, fields: Record<string, string> = {}): { parts: Buffer[]; contentType: string } {
  const boundary = `----quantd-bench-${Date.now().toString(16)}`;
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(fields)) {
    parts.push(Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`));
  }
  for (const [name, bytes] of Object.entries(files)) {
    parts.push(Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="${name}"; filename="${name}.onnx"\r\ncontent-type: application/octet-stream\r\n\r\n`), bytes, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return { parts, contentType: `multipart/form-data; boundary=${boundary}` };
}

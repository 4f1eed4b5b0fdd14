import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { createConnection, createServer } from 'node:net';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { graph, model, node, valueInfo, floatTensor } from '../../src/onnx/graph/build.js';
import { encodeModelBytes } from '../../src/onnx/proto/encode.js';
import { DataType } from '../../src/onnx/proto/model.js';
import { gemmMlp, randn, withExternalData } from '../onnx/models.js';

// The servers of the scale-out topology (a real redis-server, s3rver as its own process) and
// helpers, with no test-runner hooks: test/scale/topology.ts uses them under node --test and
// bench/scale.ts outside it. Each server is stopped by its own PID; `onSpawn` lets the caller
// track the children for a last-resort kill.

export const BUCKET = 'quantd-test';
const S3RVER = join(dirname(createRequire(import.meta.url).resolve('s3rver/package.json')), 'bin', 's3rver.js');
type OnSpawn = (child: ChildProcess) => ChildProcess;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` until it returns something other than undefined, at most `timeoutMs`. */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
}

export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await exited;
}

async function tcpAnswers(port: number, send: string, expect: RegExp): Promise<true | undefined> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    let got = '';
    sock.setTimeout(1000, () => (sock.destroy(), resolve(undefined)));
    sock.on('error', () => resolve(undefined));
    sock.on('connect', () => sock.write(send));
    sock.on('data', (d) => {
      got += d.toString();
      if (expect.test(got)) {
        sock.destroy();
        resolve(true);
      }
    });
  });
}

export class RedisServer {
  child: ChildProcess | undefined;
  constructor(
    readonly port: number,
    public dir: string,
    readonly aof: boolean,
    readonly onSpawn: OnSpawn = (c) => c,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    const persistence = this.aof ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
    this.child = this.onSpawn(
      spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(this.port), '--dir', this.dir, '--save', '', '--maxmemory-policy', 'noeviction', ...persistence], { stdio: 'ignore' }),
    );
    await until('redis-server to answer PING', () => tcpAnswers(this.port, 'PING\r\n', /\+PONG/), 15_000);
  }

  async kill(): Promise<void> {
    if (this.child) await stopChild(this.child);
  }
}

export class S3Server {
  child: ChildProcess | undefined;
  constructor(
    readonly port: number,
    readonly dir: string,
    readonly onSpawn: OnSpawn = (c) => c,
  ) {}

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    this.child = this.onSpawn(spawn(process.execPath, [S3RVER, '-d', this.dir, '-a', '127.0.0.1', '-p', String(this.port), '--configure-bucket', BUCKET, '--silent'], { stdio: 'ignore' }));
    await until('s3rver to answer', () => tcpAnswers(this.port, 'GET / HTTP/1.0\r\n\r\n', /^HTTP\/1\.[01] /), 15_000);
  }

  async kill(): Promise<void> {
    if (this.child) await stopChild(this.child);
  }
}

/** S3 settings for the store: a real bucket when S3_TEST_ENDPOINT is set, else s3rver. */
export function s3Env(s3: S3Server | undefined): Record<string, string> {
  if (process.env.S3_TEST_ENDPOINT) {
    return {
      S3_ENDPOINT: process.env.S3_TEST_ENDPOINT,
      S3_BUCKET: process.env.S3_TEST_BUCKET ?? BUCKET,
      S3_REGION: process.env.S3_TEST_REGION ?? 'us-east-1',
      S3_ACCESS_KEY_ID: process.env.S3_TEST_ACCESS_KEY_ID ?? '',
      S3_SECRET_ACCESS_KEY: process.env.S3_TEST_SECRET_ACCESS_KEY ?? '',
      S3_FORCE_PATH_STYLE: process.env.S3_TEST_FORCE_PATH_STYLE ?? 'true',
    };
  }
  // s3rver accepts these keys (its README); it checks SigV4 signatures like S3 does.
  return { S3_ENDPOINT: s3!.endpoint, S3_BUCKET: BUCKET, S3_ACCESS_KEY_ID: 'S3RVER', S3_SECRET_ACCESS_KEY: 'S3RVER', S3_FORCE_PATH_STYLE: 'true' };
}

export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/**
 * A chain of `layers` MatMuls of [width, width]: long enough a job (tensor by tensor, with
 * progress after each) to be killed, cancelled or interrupted half-way through.
 */
export function deepNet(layers: number, width: number): Buffer {
  const F = DataType.float32;
  const nodes = [];
  const initializers = [];
  let prev = 'x';
  for (let i = 0; i < layers; i++) {
    const out = i === layers - 1 ? 'y' : `h${i}`;
    nodes.push(node('MatMul', [prev, `W${i}`], [out], { name: `mm${i}` }));
    initializers.push(floatTensor(`W${i}`, [width, width], randn(width * width, 100 + i, 1 / Math.sqrt(width))));
    prev = out;
  }
  return Buffer.from(encodeModelBytes(model(graph({ nodes, initializers, inputs: [valueInfo('x', F, [1, width])], outputs: [valueInfo('y', F, [1, width])] }))));
}

const MiB = 1 << 20;

/**
 * A multipart job upload of about `size` bytes, generated as it is sent: a small model whose
 * W1 lives in an external data file padded with zeros to `size` (the whole file crosses the
 * replica and S3, the job stays small). `onMiB` is told each MiB of padding as it goes out.
 */
function* bigBody(boundary: string, size: number, onMiB?: (mib: number) => void): Generator<Buffer> {
  const ext = withExternalData(gemmMlp(), ['W1'], 'weights.bin');
  yield Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="model"; filename="model.onnx"\r\ncontent-type: application/octet-stream\r\n\r\n`);
  yield Buffer.from(ext.bytes);
  yield Buffer.from(`\r\n--${boundary}\r\ncontent-disposition: form-data; name="weights.bin"; filename="weights.bin"\r\ncontent-type: application/octet-stream\r\n\r\n`);
  yield Buffer.from(ext.data);
  const zeros = Buffer.alloc(MiB);
  for (let left = size - ext.data.length, mib = 1; left > 0; left -= MiB, mib++) {
    onMiB?.(mib);
    yield left >= MiB ? zeros : zeros.subarray(0, left);
  }
  yield Buffer.from(`\r\n--${boundary}\r\ncontent-disposition: form-data; name="bits"\r\n\r\n4\r\n--${boundary}--\r\n`);
}

/** Streams a bigBody to POST /v1/jobs; the answer counts as soon as it arrives, even before the body is all sent. */
export async function bigUpload(
  base: string,
  size: number,
  onMiB?: (mib: number) => void,
  timeoutMs = 90_000,
): Promise<{ status: number; json: { id?: string; code?: string; message?: string } }> {
  const boundary = `b${Date.now()}`;
  const url = new URL(`${base}/v1/jobs`);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(text) as { id?: string; code?: string; message?: string } }));
    });
    req.on('error', reject);
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer to the upload in ${timeoutMs / 1000} s`)));
    pipeline(Readable.from(bigBody(boundary, size, onMiB)), req).catch(() => undefined);
  });
}

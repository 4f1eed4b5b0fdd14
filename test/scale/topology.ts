import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after } from 'node:test';
import { graph, model, node, valueInfo, floatTensor } from '../../src/onnx/graph/build.js';
import { encodeModelBytes } from '../../src/onnx/proto/encode.js';
import { DataType } from '../../src/onnx/proto/model.js';
import { randn } from '../onnx/models.js';
import { startServer, type ServerProcess } from '../http/server-process.js';

// The scale-out test topology on one machine (shared/research/scale-out.md §4): a real
// redis-server, s3rver as its own process and quantd replicas as separate processes, all on
// 127.0.0.1 with free ports, each stopped by its own PID when the tests end.

export const BUCKET = 'quantd-test';
const S3RVER = join(dirname(createRequire(import.meta.url).resolve('s3rver/package.json')), 'bin', 's3rver.js');

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

const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

async function stop(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
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
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    const persistence = this.aof ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
    this.child = track(
      spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(this.port), '--dir', this.dir, '--save', '', '--maxmemory-policy', 'noeviction', ...persistence], { stdio: 'ignore' }),
    );
    await until('redis-server to answer PING', () => tcpAnswers(this.port, 'PING\r\n', /\+PONG/), 15_000);
  }

  async kill(): Promise<void> {
    if (this.child) await stop(this.child);
  }
}

export class S3Server {
  child: ChildProcess | undefined;
  constructor(
    readonly port: number,
    readonly dir: string,
  ) {}

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    this.child = track(spawn(process.execPath, [S3RVER, '-d', this.dir, '-a', '127.0.0.1', '-p', String(this.port), '--configure-bucket', BUCKET, '--silent'], { stdio: 'ignore' }));
    await until('s3rver to answer', () => tcpAnswers(this.port, 'GET / HTTP/1.0\r\n\r\n', /^HTTP\/1\.[01] /), 15_000);
  }

  async kill(): Promise<void> {
    if (this.child) await stop(this.child);
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

export interface Topology {
  root: string;
  redis: RedisServer;
  s3: S3Server;
  env: Record<string, string>;
  replica(name: string, extra?: Record<string, string>): Promise<Replica>;
}

export interface Replica extends ServerProcess {
  name: string;
  base: string;
  pid: number;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export const LOCK_MS = 3000;
export const STALLED_MS = 2000;

export async function topology(opts: { aof?: boolean } = {}): Promise<Topology> {
  const root = mkdtempSync(join(tmpdir(), 'quantd-scale-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  const redis = new RedisServer(await freePort(), join(root, 'redis'), opts.aof ?? true);
  const s3 = new S3Server(await freePort(), join(root, 's3'));
  await redis.start();
  if (!process.env.S3_TEST_ENDPOINT) await s3.start();
  const env = {
    JOBS_STORE: 'redis',
    REDIS_URL: redis.url,
    ...s3Env(s3),
    S3_PART_SIZE: String(8 * 1024 * 1024),
    S3_UPLOAD_QUEUE: '4',
    WORKERS: '1',
    JOBS_CONCURRENCY: '1',
    JOBS_LOCK_MS: String(LOCK_MS),
    JOBS_STALLED_INTERVAL_MS: String(STALLED_MS),
    SHUTDOWN_TIMEOUT_MS: '20000',
    MAX_EVENT_LOOP_DELAY_MS: '0',
    NODE_NO_WARNINGS: '1',
    LOG_LEVEL: process.env.SCALE_LOG_LEVEL ?? 'info',
  };
  const replicas: Replica[] = [];
  // SCALE_LOGS=<file>: every replica's log lines, for looking into a failure.
  after(() => {
    const file = process.env.SCALE_LOGS;
    if (file) writeFileSync(file, replicas.flatMap((r) => r.lines().map((l) => JSON.stringify({ replica: r.name, pid: r.pid, ...l }))).join('\n'));
  });
  return {
    root,
    redis,
    s3,
    env,
    async replica(name, extra = {}) {
      const dir = join(root, `jobs-${name}-${Date.now()}`);
      const server = await startServer({ ...env, JOBS_DIR: dir, ...extra }, true);
      const pid = server.child.pid!;
      track(server.child);
      const replica = { ...server, name, pid, base: `http://127.0.0.1:${server.port}`, stop: (signal: NodeJS.Signals = 'SIGKILL') => stop(server.child, signal) };
      replicas.push(replica);
      return replica;
    },
  };
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

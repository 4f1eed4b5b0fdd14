import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { startServer, type ServerProcess } from '../http/server-process.js';
import { RedisServer, S3Server, freePort, s3Env, stopChild, until } from './servers.js';

export { BUCKET, RedisServer, S3Server, bigUpload, deepNet, freePort, rssBytes, s3Env, sleep, until } from './servers.js';

// The scale-out test topology on one machine (shared/research/scale-out.md §4): a real
// redis-server, s3rver as its own process and quantd replicas as separate processes, all on
// 127.0.0.1 with free ports, each stopped by its own PID when the tests end.

const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
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
  const redis = new RedisServer(await freePort(), join(root, 'redis'), opts.aof ?? true, track);
  const s3 = new S3Server(await freePort(), join(root, 's3'), track);
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
      const replica = { ...server, name, pid, base: `http://127.0.0.1:${server.port}`, stop: (signal: NodeJS.Signals = 'SIGKILL') => stopChild(server.child, signal) };
      replicas.push(replica);
      // Listening is not ready: its Redis connections may still be connecting (then POST
      // /v1/jobs is a 503). A replica is handed out once /readyz says it takes jobs.
      await until(`${name} to be ready`, async () => ((await fetch(`${replica.base}/readyz`)).status === 200 ? true : undefined), 30_000, 50);
      return replica;
    },
  };
}


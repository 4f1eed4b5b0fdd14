import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { BUCKET, RedisServer, S3Server, bigUpload, deepNet, freePort, sleep, until } from '../test/scale/servers.js';
import { row, type BenchOptions, type ScenarioResult } from './lib/rows.js';
import { startServer, type BenchServer } from './lib/server.js';
import { median } from './lib/stats.js';

// Scale-out (issue 12) on this one machine: a real redis-server and s3rver, quantd replicas
// as separate processes (bench/server.ts with JOBS_STORE=redis).
// - Throughput of N ROLE=worker replicas (one worker thread, one job at a time each) on many
//   small model jobs posted to a ROLE=api replica, N = 1 and 2; a round is the time from the
//   first POST to the last job succeeded.
// - RSS of the API replica (VmRSS sampled every 50 ms) during a streamed 1 GiB and 2 GiB
//   multipart upload (no worker runs it: the job is deleted after).
// The caveat: replicas, Redis, s3rver and this client share the machine's cores, so N
// workers on N of them compete with everything else; see bench/README.md.

const MiB = 1 << 20;
const PART = 8 * MiB;
const QUEUE = 4;

async function post(base: string, query: string, body: Buffer): Promise<string> {
  const res = await fetch(`${base}/v1/jobs${query}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body });
  const json = (await res.json()) as { id: string };
  if (res.status !== 202) throw new Error(`POST /v1/jobs: ${res.status} ${JSON.stringify(json)}`);
  return json.id;
}

async function finished(base: string, id: string): Promise<void> {
  await until(
    `job ${id}`,
    async () => {
      const j = (await (await fetch(`${base}/v1/jobs/${id}`)).json()) as { status: string; error?: unknown };
      if (j.status === 'failed') throw new Error(`job ${id} failed: ${JSON.stringify(j.error)}`);
      return j.status === 'succeeded' ? true : undefined;
    },
    600_000,
    50,
  );
}

/** CPU seconds (user + system, all threads) a process has used: /proc/<pid>/stat utime + stime, in USER_HZ (100) ticks. */
function cpuOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function hasRedis(): boolean {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export async function run(o: BenchOptions): Promise<ScenarioResult> {
  if (!hasRedis()) {
    o.log('scale: skipped, no redis-server on PATH (apt-get install redis-server)');
    return { rows: [], details: [] };
  }
  const root = mkdtempSync(join(tmpdir(), 'quantd-bench-scale-'));
  const redis = new RedisServer(await freePort(), join(root, 'redis'), true);
  const s3 = new S3Server(await freePort(), join(root, 's3'));
  const servers: BenchServer[] = [];
  try {
    await redis.start();
    await s3.start();
    const env = {
      JOBS_STORE: 'redis',
      REDIS_URL: redis.url,
      S3_ENDPOINT: s3.endpoint,
      S3_BUCKET: BUCKET,
      S3_ACCESS_KEY_ID: 'S3RVER',
      S3_SECRET_ACCESS_KEY: 'S3RVER',
      S3_FORCE_PATH_STYLE: 'true',
      S3_PART_SIZE: String(PART),
      S3_UPLOAD_QUEUE: String(QUEUE),
      WORKERS: '1',
      JOBS_CONCURRENCY: '1',
      MAX_EVENT_LOOP_DELAY_MS: '0',
      NODE_NO_WARNINGS: '1',
    };
    const replica = async (name: string, extra: Record<string, string>) => {
      const s = await startServer({ ...env, JOBS_DIR: join(root, `jobs-${name}`), ...extra });
      servers.push(s);
      return s;
    };
    const api = await replica('api', { ROLE: 'api' });
    const base = `http://127.0.0.1:${api.port}`;

    // Throughput on two workloads: "small", one tiny model per job (a few hundred ms on one
    // thread: the queue's and S3's fixed cost per job is as large as the work), and "heavier",
    // a model whose quantization (calibration=mse) dominates, to tell the workers' scaling
    // from the shared parts'.
    const workloads = [
      { key: 'small', what: '6-layer 256×256 MatMul chain, bits=4', model: deepNet(6, 256), query: '?bits=4', jobs: o.quick ? 12 : 24 },
      { key: 'heavier', what: '8-layer 512×512 MatMul chain, bits=4, calibration=mse', model: deepNet(8, 512), query: '?bits=4&calibration=mse', jobs: o.quick ? 6 : 10 },
    ];
    const rounds = 3;
    type Cpu = { workers: number; api: number; s3: number; redis: number };
    const measured: Record<string, Record<number, { rates: number[]; cpu: Cpu; loads: number[] }>> = { small: {}, heavier: {} };
    const workers: BenchServer[] = [];
    for (const n of [1, 2]) {
      while (workers.length < n) workers.push(await replica(`w${workers.length}`, { ROLE: 'worker' }));
      for (const w of workloads) {
        // Warm-up: every worker has run a job (its pool and onnxruntime are loaded).
        await Promise.all(Array.from({ length: 2 * n }, async () => finished(base, await post(base, w.query, w.model))));
        const cpu0 = workers.reduce((sum, x) => sum + x.cpuSeconds(), 0);
        const api0 = api.cpuSeconds();
        const s30 = cpuOf(s3.child!.pid!);
        const redis0 = cpuOf(redis.child!.pid!);
        const rates: number[] = [];
        const loads: number[] = [];
        for (let r = 0; r < rounds; r++) {
          loads.push(loadavg()[0]!);
          const t0 = performance.now();
          const ids: string[] = [];
          for (let i = 0; i < w.jobs; i++) ids.push(await post(base, w.query, w.model));
          for (const id of ids) await finished(base, id);
          rates.push(w.jobs / ((performance.now() - t0) / 1000));
          for (const id of ids) await fetch(`${base}/v1/jobs/${id}`, { method: 'DELETE' });
        }
        const per = rounds * w.jobs;
        const cpu: Cpu = {
          workers: (workers.reduce((sum, x) => sum + x.cpuSeconds(), 0) - cpu0) / per,
          api: (api.cpuSeconds() - api0) / per,
          s3: (cpuOf(s3.child!.pid!) - s30) / per,
          redis: (cpuOf(redis.child!.pid!) - redis0) / per,
        };
        measured[w.key]![n] = { rates, cpu, loads };
        o.log(
          `scale: ${w.key}, ${n} worker replica(s): ${rates.map((v) => v.toFixed(2)).join(', ')} jobs/s; CPU per job: workers ${cpu.workers.toFixed(3)} s, API ${cpu.api.toFixed(3)} s, s3rver ${cpu.s3.toFixed(3)} s, redis ${cpu.redis.toFixed(3)} s; load ${loads.map((l) => l.toFixed(1)).join(', ')}`,
        );
      }
    }
    for (const w of workers) {
      await w.stop();
      servers.splice(servers.indexOf(w), 1);
    }

    // Memory during big uploads, each on a fresh API replica (so idle is a replica that has
    // not yet held a big upload); no worker runs them, the jobs are deleted after.
    const memory: Record<number, { idle: number; peak: number; seconds: number }> = {};
    for (const gib of o.quick ? [1] : [1, 2]) {
      const fresh = await replica(`api-${gib}`, { ROLE: 'api' });
      const freshBase = `http://127.0.0.1:${fresh.port}`;
      await sleep(2000);
      const idle = fresh.rss();
      let peak = idle;
      const sampler = setInterval(() => (peak = Math.max(peak, fresh.rss())), 50);
      const t0 = performance.now();
      const res = await bigUpload(freshBase, gib * 1024 * MiB, undefined, 900_000);
      clearInterval(sampler);
      if (res.status !== 202) throw new Error(`the ${gib} GiB upload got ${res.status}`);
      memory[gib] = { idle, peak, seconds: (performance.now() - t0) / 1000 };
      o.log(`scale: ${gib} GiB upload: RSS idle ${(idle / MiB).toFixed(0)} MiB, peak ${(peak / MiB).toFixed(0)} MiB, ${memory[gib]!.seconds.toFixed(1)} s`);
      await fetch(`${freshBase}/v1/jobs/${res.json.id}`, { method: 'DELETE' });
      await fresh.stop();
      servers.splice(servers.indexOf(fresh), 1);
    }
    const big = memory[o.quick ? 1 : 2]!;
    const throughputRows = workloads.map((w) => {
      const m = measured[w.key]!;
      const loads = [...m[1]!.loads, ...m[2]!.loads];
      return row({
        name: w.key === 'small' ? 'scale.workers_2_throughput' : 'scale.workers_2_throughput_heavier',
        value: median(m[2]!.rates),
        unit: 'jobs/s',
        baselineName: 'one worker replica',
        baselineValue: median(m[1]!.rates),
        better: 'higher',
        target: 1.6,
        note: `${w.jobs} jobs of a ${w.what}, posted to an API replica; median of ${rounds} rounds; load average ${median(loads).toFixed(1)} (1 min); target 0.8 × N × one replica's; replicas, Redis, s3rver and the client share the machine`,
      });
    });
    return {
      rows: [
        ...throughputRows,
        row({
          name: `scale.api_rss_${o.quick ? 1 : 2}gib_upload`,
          value: (big.peak - big.idle) / MiB,
          unit: 'MiB',
          baselineName: 'the 300 MiB budget',
          baselineValue: 300,
          better: 'lower',
          target: 1,
          note: `peak VmRSS above idle (${(big.idle / MiB).toFixed(0)} MiB; peak ${(big.peak / MiB).toFixed(0)} MiB) of a fresh API replica during a streamed multipart upload of ${o.quick ? 1 : 2} GiB in ${big.seconds.toFixed(0)} s; target ≤ 300 MiB; S3_PART_SIZE ${PART / MiB} MiB × S3_UPLOAD_QUEUE ${QUEUE} = ${(PART * QUEUE) / MiB} MiB of parts`,
        }),
      ],
      details: [
        ...workloads.flatMap((w) =>
          ([1, 2] as const).flatMap((n) => {
            const c = measured[w.key]![n]!.cpu;
            const at = `${w.key}, ${n} worker replica(s)`;
            return [
              { name: at, value: median(measured[w.key]![n]!.rates), unit: 'jobs/s' },
              { name: `${at}: worker CPU per job`, value: c.workers * 1000, unit: 'ms' },
              { name: `${at}: API replica CPU per job`, value: c.api * 1000, unit: 'ms' },
              { name: `${at}: s3rver CPU per job`, value: c.s3 * 1000, unit: 'ms' },
              { name: `${at}: redis-server CPU per job`, value: c.redis * 1000, unit: 'ms' },
            ];
          }),
        ),
        ...Object.entries(memory).flatMap(([gib, m]) => [
          { name: `${gib} GiB upload: API replica RSS peak above idle`, value: (m.peak - m.idle) / MiB, unit: 'MiB' },
          { name: `${gib} GiB upload: time`, value: m.seconds, unit: 's' },
        ]),
      ],
    };
  } finally {
    for (const s of servers) await s.stop().catch(() => undefined);
    await s3.kill();
    await redis.kill();
    rmSync(root, { recursive: true, force: true });
  }
}

import autocannon from 'autocannon';
import { fork, type ChildProcess } from 'node:child_process';
import { getPriority, setPriority } from 'node:os';
import { buildMix, type Kind } from './mix.js';
import { SERVER_NODE_FLAGS } from '../../src/http/node-flags.js';

export interface LoadOptions {
  requests: number;
  connections: number;
  maxTensorBytes?: number;
  /** Hard stop for each burst. */
  timeoutS: number;
  /** Requests in the warm-up burst before memory is first measured (default: two per connection). */
  warmRequests?: number;
  env?: Record<string, string>;
  /** Pause before each memory measurement (default 3 s). */
  settleMs?: number;
}

interface Memory {
  heapUsed: number;
  rss: number;
  external: number;
  arrayBuffers: number;
  pool: { inFlight: number };
}

export interface LoadReport {
  sent: number;
  byKind: Record<string, { sent: number; wrong: number }>;
  statusCounts: Record<string, number>;
  /** The first few wrong answers, with why. */
  wrong: string[];
  errors: number;
  timeouts: number;
  /** The first few connection errors autocannon saw. */
  errorMessages: string[];
  durationS: number;
  /** p50 and p99: the larger of the two halves' (mergeHealth). */
  healthz: { samples: number; failures: string[]; p50: number; p99: number; max: number };
  /** mid: between the measured run's two halves. */
  memory: { start: Memory; mid: Memory; end: Memory };
}

const HARNESS = new URL('./harness.js', import.meta.url);

/**
 * glibc settings the Docker image runs with (see the Dockerfile): big buffers go straight
 * back to the system when freed instead of staying in per-thread arenas, so RSS measures
 * what the service holds rather than what the allocator kept.
 */
const ALLOCATOR = { MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '131072' };

interface Harness {
  child: ChildProcess;
  port: number;
  ask: <T>(type: string) => Promise<T>;
  close: () => Promise<void>;
}

function startHarness(env: Record<string, string>): Promise<Harness> {
  // The server's own V8 flags, as production starts it (src/http/node-flags.ts).
  const child = fork(HARNESS, { execArgv: ['--expose-gc', ...SERVER_NODE_FLAGS], env: { ...process.env, LOG_LEVEL: 'warn', ...ALLOCATOR, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ask = <T>(type: string) =>
    new Promise<T>((resolve, reject) => {
      const on = (msg: { type: string }) => {
        if (msg.type !== type) return;
        child.off('message', on);
        resolve(msg as T);
      };
      child.on('message', on);
      void exited.then(() => reject(new Error(`the service exited before answering '${type}'`)));
      child.send({ type });
    });
  const close = async () => {
    if (child.exitCode === null && child.signalCode === null) child.send({ type: 'close' });
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`harness exited with ${code} before it was ready`)));
    child.once('message', (msg: { type: string; port: number }) => resolve({ child, port: msg.port, ask, close }));
  });
}

const PROBER = new URL('./prober.js', import.meta.url);

/** Starts the /healthz prober in its own process; stop() returns what it measured. */
function probeHealth(port: number, everyMs: number) {
  const child = fork(PROBER, [String(port), String(everyMs)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const report = new Promise<LoadReport['healthz']>((resolve, reject) => {
    child.once('message', (m) => resolve(m as LoadReport['healthz']));
    child.once('exit', (code) => reject(new Error(`the prober exited with ${code} before reporting`)));
  });
  return {
    stop: async () => {
      child.send('stop');
      return report;
    },
  };
}

/**
 * Both halves' probes as one. Quantiles cannot be merged from summaries; the larger of the
 * two halves' is an upper bound of the whole run's (a quantile of a union lies between the
 * parts'), so a limit checked on it is not loosened.
 */
function mergeHealth(a: LoadReport['healthz'], b: LoadReport['healthz']): LoadReport['healthz'] {
  return { samples: a.samples + b.samples, failures: [...a.failures, ...b.failures], p50: Math.max(a.p50, b.p50), p99: Math.max(a.p99, b.p99), max: Math.max(a.max, b.max) };
}

/** A fixed interleaving of the kinds by weight, so every run sends the same mix. */
function schedule(kinds: Kind[]): Kind[] {
  const out: Kind[] = [];
  for (const k of kinds) for (let i = 0; i < k.weight; i++) out.push(k);
  let s = 12345;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

async function request(port: number, kind: Kind): Promise<string | undefined> {
  const res = await fetch(`http://127.0.0.1:${port}${kind.path}`, { method: 'POST', body: kind.body, headers: { 'content-type': kind.contentType } });
  return kind.check(res.status, await res.text());
}

interface Tally {
  byKind: LoadReport['byKind'];
  wrong: string[];
  errorMessages: string[];
  statusCounts: Record<string, number>;
  errors: number;
  timeouts: number;
}

/** Two tallies as one (the first few messages of each, as a tally keeps). */
function merge(a: Tally, b: Tally): Tally {
  const byKind: Tally['byKind'] = {};
  for (const [k, v] of Object.entries(a.byKind)) byKind[k] = { sent: v.sent + (b.byKind[k]?.sent ?? 0), wrong: v.wrong + (b.byKind[k]?.wrong ?? 0) };
  const statusCounts = { ...a.statusCounts };
  for (const [s, n] of Object.entries(b.statusCounts)) statusCounts[s] = (statusCounts[s] ?? 0) + n;
  return {
    byKind,
    statusCounts,
    wrong: [...a.wrong, ...b.wrong].slice(0, 10),
    errorMessages: [...a.errorMessages, ...b.errorMessages].slice(0, 10),
    errors: a.errors + b.errors,
    timeouts: a.timeouts + b.timeouts,
  };
}

/** `amount` requests of the mix on `connections` connections, every answer judged. */
function blast(port: number, kinds: Kind[], amount: number, connections: number, timeoutS: number): Promise<Tally> {
  const order = schedule(kinds);
  const tally: Tally = { byKind: Object.fromEntries(kinds.map((k) => [k.name, { sent: 0, wrong: 0 }])), wrong: [], errorMessages: [], statusCounts: {}, errors: 0, timeouts: 0 };
  let next = 0;
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: `http://127.0.0.1:${port}`,
        connections,
        amount,
        timeout: timeoutS,
        // One entry, filled in for each request from the schedule in turn, so all
        // connections share one mix. autocannon calls onResponse with the context of the
        // request it answers, before setting up that connection's next one.
        requests: [
          {
            method: 'POST',
            setupRequest: (req, context) => {
              const kind = order[next++ % order.length]!;
              context.kind = kind;
              return { ...req, path: kind.path, headers: { 'content-type': kind.contentType }, body: kind.body };
            },
            onResponse: (status, body, context) => {
              const kind = context.kind as Kind;
              tally.byKind[kind.name]!.sent++;
              const why = kind.check(status, body);
              if (why) {
                tally.byKind[kind.name]!.wrong++;
                if (tally.wrong.length < 10) tally.wrong.push(`${kind.name}: ${why}`);
              }
            },
          },
        ],
      },
      (err, res) => {
        clearTimeout(stop);
        if (err) return reject(err);
        for (const [k, v] of Object.entries(res.statusCodeStats ?? {})) tally.statusCounts[k] = v.count;
        resolve({ ...tally, errors: res.errors, timeouts: res.timeouts });
      },
    );
    instance.on('reqError', (err: Error) => {
      if (tally.errorMessages.length < 10) tally.errorMessages.push(err.message);
    });
    const stop = setTimeout(() => instance.stop(), timeoutS * 1000);
  });
}

/**
 * Runs the mix against the service in a child process with autocannon, probing /healthz
 * throughout, and compares the service's memory before and after.
 *
 * "Before" is measured after a warm-up: every kind once (its answer checked against the
 * core), then a short burst of the same load. Allocators and V8 keep what a first burst
 * made them reserve, which is not a leak; a leak is what keeps growing after that, and the
 * measured run is several times longer than the burst.
 */
export async function runLoad(opts: LoadOptions): Promise<LoadReport> {
  const kinds = buildMix(opts.maxTensorBytes);
  const harness = await startHarness(opts.env ?? {});
  try {
    for (const k of kinds) {
      const why = await request(harness.port, k);
      if (why) throw new Error(`warm-up ${k.name}: ${why}`);
    }
    const warm = await blast(harness.port, kinds, opts.warmRequests ?? 2 * opts.connections, opts.connections, opts.timeoutS);
    if (warm.wrong.length || warm.errors) throw new Error(`the warm-up burst failed: ${[...warm.wrong, ...warm.errorMessages].join('; ')}`);
    // Memory is measured the same way before and after: after a pause for sockets to close
    // and threads to go idle, and after a full collection in every thread.
    const settle = () => new Promise((r) => setTimeout(r, opts.settleMs ?? 3000));
    await settle();
    const start = await harness.ask<Memory>('memory');
    let probe = probeHealth(harness.port, 5);
    const t0 = performance.now();
    // The load generator shares the machine's cores with the service; at a lower priority it
    // stands in for clients on other machines instead of starving the service it measures.
    // (Lowering one's own priority needs no privilege; raising it back would, so it stays.)
    setPriority(Math.min(19, getPriority() + 10));
    // In two halves with memory measured between them: what the allocator keeps from the
    // run's busiest moment is reached in the first half and stays flat after; a leak grows
    // in both.
    // /healthz is probed under load only: one prober per half.
    const first = await blast(harness.port, kinds, Math.ceil(opts.requests / 2), opts.connections, opts.timeoutS);
    const pause = performance.now();
    const firstHealth = await probe.stop();
    await settle();
    const mid = await harness.ask<Memory>('memory');
    probe = probeHealth(harness.port, 5);
    const paused = performance.now() - pause;
    const run = merge(first, await blast(harness.port, kinds, Math.floor(opts.requests / 2), opts.connections, opts.timeoutS));
    const durationS = (performance.now() - t0 - paused) / 1000;
    const healthz = mergeHealth(firstHealth, await probe.stop());
    await settle();
    const end = await harness.ask<Memory>('memory');
    return {
      sent: Object.values(run.byKind).reduce((a, b) => a + b.sent, 0),
      byKind: run.byKind,
      statusCounts: run.statusCounts,
      wrong: run.wrong,
      errors: run.errors,
      errorMessages: run.errorMessages,
      timeouts: run.timeouts,
      durationS,
      healthz,
      memory: { start, mid, end },
    };
  } finally {
    await harness.close();
  }
}

/**
 * The promises of issue 5 for a load run, as one list of what broke (empty when all hold).
 * The /healthz latency limit is a speed target: only the full run (`npm run test:load`, run
 * on a quiet machine) holds it; the in-suite run checks that /healthz keeps answering.
 */
export function brokenPromises(r: LoadReport, requests: number, opts: { healthzP99Ms?: number } = {}): string[] {
  const broken: string[] = [];
  const fivexx = Object.entries(r.statusCounts).filter(([s]) => Number(s) >= 500);
  if (fivexx.length) broken.push(`5xx answers: ${JSON.stringify(Object.fromEntries(fivexx))}`);
  if (r.sent < requests) broken.push(`only ${r.sent} of ${requests} requests were answered`);
  if (r.errors || r.timeouts) broken.push(`${r.errors} connection errors, ${r.timeouts} timeouts: ${r.errorMessages.join('; ')}`);
  if (r.wrong.length) broken.push(`wrong answers: ${r.wrong.join('; ')}`);
  // heapUsed is measured after a full collection: any growth over 20% is held. RSS also
  // holds what the allocator kept from the busiest moment (on a loaded machine more requests
  // overlap), which stops growing: it is a leak when it rose over 20% and was still rising in
  // the second half (by over 5% of the start).
  const { start, mid, end } = r.memory;
  const mib = (b: number) => (b / 2 ** 20).toFixed(1);
  if (end.heapUsed > 1.2 * start.heapUsed) broken.push(`heapUsed grew from ${mib(start.heapUsed)} to ${mib(end.heapUsed)} MiB (> 20%)`);
  if (end.rss > 1.2 * start.rss && end.rss - mid.rss > 0.05 * start.rss) {
    broken.push(`rss grew from ${mib(start.rss)} to ${mib(mid.rss)} MiB in the first half and to ${mib(end.rss)} MiB in the second (> 20% in all, still rising)`);
  }
  if (r.memory.end.pool.inFlight !== 0) broken.push(`${r.memory.end.pool.inFlight} tasks still in flight after the run`);
  const limit = opts.healthzP99Ms;
  if (limit !== undefined && !(r.healthz.p99 < limit)) broken.push(`/healthz p99 ${r.healthz.p99.toFixed(1)} ms (limit ${limit})`);
  if (r.healthz.samples < 10) broken.push(`only ${r.healthz.samples} /healthz samples`);
  if (r.healthz.failures.length) broken.push(`/healthz failed: ${r.healthz.failures.slice(0, 5).join('; ')}`);
  return broken;
}

export function summary(r: LoadReport): string {
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  return [
    `${r.sent} requests in ${r.durationS.toFixed(1)} s; statuses ${JSON.stringify(r.statusCounts)}`,
    `/healthz: ${r.healthz.samples} samples, p50 ${r.healthz.p50.toFixed(1)} ms, p99 ${r.healthz.p99.toFixed(1)} ms, max ${r.healthz.max.toFixed(1)} ms`,
    `heapUsed ${mib(r.memory.start.heapUsed)} → ${mib(r.memory.mid.heapUsed)} → ${mib(r.memory.end.heapUsed)}; rss ${mib(r.memory.start.rss)} → ${mib(r.memory.mid.rss)} → ${mib(r.memory.end.rss)}`,
  ].join('\n');
}

import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SERVER_NODE_FLAGS } from '../../src/http/node-flags.js';
import { send } from './http-client.js';

export interface LoopStats {
  activeMs: number;
  gcMs: number;
  majorGcMs: number;
}

export interface BenchServer {
  port: number;
  pid: number;
  /** Peak resident set size of the server process so far (VmHWM), in bytes. */
  peakRss(): number;
  /** Current resident set size (VmRSS), in bytes. */
  rss(): number;
  /** CPU time the server process has used (all threads, user + system), in seconds. */
  cpuSeconds(): number;
  /** CPU time of the server's main thread alone (the event loop: user + system), in seconds. */
  loopCpuSeconds(): number;
  /** The kernel's part of it (system time: socket reads and writes, page faults), in seconds, to 10 ms. */
  loopSystemSeconds(): number;
  /** The event loop's busy time so far (performance.eventLoopUtilization().active) and its garbage collections' pauses, in ms. */
  loopStats(): Promise<LoopStats>;
  stop(): Promise<void>;
}

/** USER_HZ: the unit of /proc times on Linux (100 on every mainstream configuration). */
const CLOCK_TICKS = 100;

function statusField(pid: number, field: string): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith(`${field}:`));
  if (!line) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(line.split(/\s+/)[1]) * 1024;
}

/** utime + stime of a /proc stat file (fields 14 and 15, after the parenthesised command name), in seconds; or stime alone. */
function cpuOf(path: string, systemOnly = false): number {
  const stat = readFileSync(path, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((systemOnly ? 0 : Number(fields[11])) + Number(fields[12])) / CLOCK_TICKS;
}

/** Starts bench/server.ts (with the server's V8 flags unless told others) and extra environment; resolves once it listens on 127.0.0.1. */
export async function startServer(env: Record<string, string> = {}, nodeFlags: readonly string[] = SERVER_NODE_FLAGS): Promise<BenchServer> {
  const entry = fileURLToPath(new URL('../server.js', import.meta.url));
  const child: ChildProcess = spawn(process.execPath, [...nodeFlags, entry], {
    env: { ...process.env, LOG_LEVEL: 'silent', ...env },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error('the bench server did not start within 30 s')), 30_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      const m = /listening (\d+)/.exec(text);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (code) => reject(new Error(`the bench server exited with code ${code}`)));
  });
  const pid = child.pid!;
  return {
    port,
    pid,
    peakRss: () => statusField(pid, 'VmHWM'),
    rss: () => statusField(pid, 'VmRSS'),
    cpuSeconds: () => cpuOf(`/proc/${pid}/stat`),
    // The main thread's id is the process id; workers, libuv's and V8's threads have their own.
    // schedstat's first field is the thread's time on a CPU in ns (stat counts 10 ms ticks).
    loopCpuSeconds: () => Number(readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').split(' ')[0]) / 1e9,
    loopSystemSeconds: () => cpuOf(`/proc/${pid}/task/${pid}/stat`, true),
    loopStats: async () => {
      const r = await send(port, 'GET', '/bench/loop', undefined, {}, true);
      const j = JSON.parse(r.body!.toString()) as { active_ms: number; gc_ms: { minor: number; major: number; other: number } };
      return { activeMs: j.active_ms, gcMs: j.gc_ms.minor + j.gc_ms.major + j.gc_ms.other, majorGcMs: j.gc_ms.major };
    },
    stop: () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.stdin!.end();
      }),
  };
}

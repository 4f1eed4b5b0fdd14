import { spawn, type ChildProcess } from 'node:child_process';
import { after } from 'node:test';
import { SERVER_NODE_FLAGS } from '../../src/http/node-flags.js';

export interface ServerProcess {
  child: ChildProcess;
  port: number;
  /** Every JSON log line printed so far. */
  lines: () => Array<Record<string, unknown>>;
  /** Resolves with the first log line (past or future) that matches. */
  waitForLog: (match: (line: Record<string, unknown>) => boolean, timeoutMs?: number) => Promise<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

const SERVER = new URL('../../src/http/server.js', import.meta.url);

/**
 * Starts `node dist/src/http/server.js` on a free loopback port, as production runs it. It is
 * killed when the calling test ends, or with `outlive` when the test process does (a server
 * started inside one test and used by the next).
 */
export async function startServer(env: Record<string, string>, outlive = false): Promise<ServerProcess> {
  const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, SERVER.pathname], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  if (outlive) process.once('exit', kill);
  else after(kill);
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<{ match: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }> = [];
  let partial = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (text: string) => {
    partial += text;
    const complete = partial.split('\n');
    partial = complete.pop()!;
    for (const raw of complete) {
      if (!raw.trim()) continue;
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        line = { msg: raw };
      }
      lines.push(line);
      for (const w of [...waiters]) {
        if (w.match(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })),
  );
  const waitForLog = (match: (l: Record<string, unknown>) => boolean, timeoutMs = 15_000) => {
    const seen = lines.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching log line in ${timeoutMs} ms; stderr: ${stderr.slice(-2000)}`)), timeoutMs);
      waiters.push({ match, resolve: (l) => (clearTimeout(timer), resolve(l)) });
    });
  };
  const ready = await waitForLog((l) => l.msg === 'quantd ready');
  return { child, port: Number(ready.port), lines: () => [...lines], waitForLog, exited };
}

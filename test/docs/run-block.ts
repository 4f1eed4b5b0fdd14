import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lang } from './readme-blocks.js';

// Runs one README block as a user pastes it: sh/bash blocks by bash with `-e` (a failing
// command fails the example; no pipefail, since `curl ... | head -c 300` ends curl with
// EPIPE by design), python blocks as a file run by python3. `python3` is Debian's
// /usr/bin/python3 when it exists (the one with numpy, requests and PIL), whatever else is
// first on PATH. Each run is its own process group, stopped by its PID's group on timeout.

export interface BlockRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunOptions {
  cwd: string;
  /** Where the script file is written (the work directory; the block may run elsewhere). */
  scriptDir: string;
  name: string;
  args?: string[];
  env?: Record<string, string>;
  timeoutMs: number;
  /** Resolves once the block is running and this returns true; the block is then stopped (a server). */
  until?: (out: { stdout: string; stderr: string }) => Promise<boolean>;
}

const DEBIAN_PYTHON = '/usr/bin/python3';

/** A directory to put first on PATH so that `python3` is Debian's interpreter when it exists. */
export function pythonShim(dir: string): string {
  const bin = join(dir, '.bin');
  mkdirSync(bin, { recursive: true });
  if (existsSync(DEBIAN_PYTHON) && !existsSync(join(bin, 'python3'))) symlinkSync(DEBIAN_PYTHON, join(bin, 'python3'));
  return bin;
}

function stopGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGTERM');
  } catch {
    // already gone
  }
}

export function runBlock(lang: Lang, code: string, opts: RunOptions): Promise<BlockRun> {
  const ext = lang === 'python' ? 'py' : 'sh';
  const script = join(opts.scriptDir, `${opts.name}.${ext}`);
  writeFileSync(script, code);
  const [cmd, argv] = lang === 'python' ? ['python3', [script, ...(opts.args ?? [])]] : ['bash', ['-e', script, ...(opts.args ?? [])]];
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      stopGroup(child.pid);
    }, opts.timeoutMs);
    if (opts.until) {
      const poll = async () => {
        while (child.exitCode === null && child.signalCode === null && !timedOut) {
          if (await opts.until!({ stdout, stderr }).catch(() => false)) return stopGroup(child.pid);
          await new Promise((r) => setTimeout(r, 100));
        }
      };
      void poll();
    }
    child.once('error', (err) => (clearTimeout(timer), reject(err)));
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) reject(new Error(`${opts.name} ran past ${opts.timeoutMs} ms\nstdout: ${stdout.slice(-2000)}\nstderr: ${stderr.slice(-2000)}`));
      else resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
}

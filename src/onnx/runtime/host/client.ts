import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { errorNameOf, Errors } from '../../../errors.js';
import type { HostReply, HostRequest, HostValue } from './protocol.js';

// The worker's side of its onnxruntime host (child.ts): started on first use, kept for the
// next model while requests keep coming (starting it and onnxruntime costs ~0.1-0.3 s),
// stopped after IDLE_MS without any, but never while it holds a reference run its caller has
// not released: the caller compares against it after quantizing, which can take minutes (a
// data-aware method, a big job), and a host closed meanwhile lost it. When the host dies mid-request (a native crash),
// every request in flight fails with HostCrashed and the next one starts a fresh host.

const IDLE_MS = 60_000;
const CANCEL_POLL_MS = 25;

/** The host process died (a signal, or an exit) before answering. */
export class HostCrashed extends Error {
  readonly signal: string | null;
  readonly exitCode: number | null;
  constructor(signal: string | null, exitCode: number | null) {
    super(`onnxruntime crashed (${signal ?? `exit code ${exitCode}`}) in its host process`);
    this.name = 'HostCrashed';
    this.signal = signal;
    this.exitCode = exitCode;
  }
}

interface Pending {
  op: HostCall['op'];
  resolve(v: HostValue): void;
  reject(e: Error): void;
  progress?: ((done: number, total: number) => void) | undefined;
}

/** A request as the caller writes it (the client adds its id and staging lists). */
export type HostCall = HostRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id' | 'cleanup' | 'holds'> : never) : never;

export interface RequestOptions {
  /** Polled while the request runs; the host is stopped when it says so. */
  cancelled?: (() => boolean) | undefined;
  /** Staging directories the host removes when it has answered. */
  cleanup?: string[] | undefined;
  /** Staging directories later requests read too: the host removes them only if this worker goes away. */
  holds?: string[] | undefined;
  /** The host's progress messages for this request. */
  progress?: ((done: number, total: number) => void) | undefined;
}

export class OrtHost {
  #child: ChildProcess | undefined;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #idle: NodeJS.Timeout | undefined;
  /** Reference runs the host keeps for a later compare, until released. */
  readonly #held = new Set<number>();
  readonly #entry: string;
  readonly #idleMs: number;

  constructor(entry = fileURLToPath(new URL('./child.js', import.meta.url)), idleMs = IDLE_MS) {
    this.#entry = entry;
    this.#idleMs = idleMs;
  }

  /** The host's process id, or undefined while none runs. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  #start(): ChildProcess {
    // No inherited flags (--test, --cpu-prof, inspector ports): the host is a plain process.
    const child = fork(this.#entry, [], { execArgv: [], serialization: 'advanced', stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    child.on('message', (msg: HostReply) => {
      const p = this.#pending.get(msg.id);
      if (!p) return;
      if ('progress' in msg) {
        p.progress?.(...msg.progress);
        return;
      }
      this.#pending.delete(msg.id);
      if (msg.ok && p.op === 'reference' && typeof msg.value === 'object' && msg.value !== null && 'ref' in msg.value) this.#held.add(msg.value.ref as number);
      this.#settled();
      if (msg.ok) p.resolve(msg.value);
      else {
        const name = msg.code ? errorNameOf(msg.code) : undefined;
        p.reject(name ? new Errors[name](msg.message) : new Error(msg.message));
      }
    });
    const gone = (signal: NodeJS.Signals | null, code: number | null) => {
      if (this.#child === child) this.#gone(new HostCrashed(signal, code));
    };
    child.on('exit', (code, signal) => gone(signal, code));
    child.on('error', () => gone(null, null));
    return child;
  }

  #gone(err: Error): void {
    this.#child = undefined;
    this.#held.clear();
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.reject(err);
  }

  #settled(): void {
    if (this.#pending.size > 0 || !this.#child) return;
    // Idle: the host must not keep this thread (or a test process) alive, and goes away if unused.
    this.#child.unref();
    (this.#child.channel as { unref?: () => void } | undefined)?.unref?.();
    clearTimeout(this.#idle);
    if (this.#held.size > 0) return;
    this.#idle = setTimeout(() => this.close(), this.#idleMs);
    this.#idle.unref();
  }

  /**
   * Starts the host now if none runs, so that it boots (Node, then onnxruntime) while the
   * caller is still staging the model it will send; idle, it goes away as any idle host does.
   */
  warm(): void {
    if (this.#child) return;
    this.#child = this.#start();
    this.#settled();
  }

  /** Sends one request; `cancelled` is polled while it runs, and stops the host when it says so. */
  request(req: HostCall, cancelled?: () => boolean, cleanup?: string[]): Promise<HostValue> {
    return this.send(req, { cancelled, cleanup });
  }

  send(req: HostCall, o: RequestOptions = {}): Promise<HostValue> {
    const { cancelled, cleanup, holds, progress } = o;
    // A request of a task already cancelled is never sent: its poll would stop the host, which
    // the thread's next task may be using by then.
    if (cancelled?.()) return Promise.reject(new Errors.Aborted('the task was cancelled'));
    clearTimeout(this.#idle);
    if (req.op === 'release') this.#held.delete(req.ref);
    const child = (this.#child ??= this.#start());
    child.ref();
    (child.channel as { ref?: () => void } | undefined)?.ref?.();
    const id = this.#nextId++;
    return new Promise<HostValue>((resolve, reject) => {
      let poll: NodeJS.Timeout | undefined;
      const done = () => clearInterval(poll);
      this.#pending.set(id, {
        op: req.op,
        resolve: (v) => (done(), resolve(v)),
        reject: (e) => (done(), reject(e)),
        progress,
      });
      if (cancelled) {
        poll = setInterval(() => {
          if (!cancelled() || !this.#pending.has(id)) return;
          // onnxruntime cannot be interrupted inside a call: the host is stopped instead.
          this.#pending.delete(id);
          done();
          this.kill();
          reject(new Errors.Aborted('the task was cancelled'));
        }, CANCEL_POLL_MS);
      }
      child.send({ ...req, id, cleanup, holds } as HostRequest);
    });
  }

  /** Stops the host at once (its requests fail with HostCrashed). */
  kill(): void {
    const child = this.#child;
    if (!child) return;
    this.#gone(new HostCrashed('SIGKILL', null));
    child.kill('SIGKILL');
  }

  /** Lets the host exit when it is done (it exits as its IPC channel closes). */
  close(): void {
    clearTimeout(this.#idle);
    const child = this.#child;
    if (child?.connected && this.#pending.size === 0 && this.#held.size === 0) {
      this.#child = undefined;
      child.disconnect();
    }
  }
}

let shared: OrtHost | undefined;
let calibration: OrtHost | undefined;

/** This thread's host. */
export function ortHost(): OrtHost {
  return (shared ??= new OrtHost());
}

/**
 * This thread's second host, for calibration and statistics runs (activations/host-runs.ts):
 * the synchronous endpoint's validation reference run starts in ortHost() before quantizing
 * and runs beside it; a host serves one request at a time, so calibration in the same host
 * would wait for it.
 */
export function calibrationHost(): OrtHost {
  return (calibration ??= new OrtHost());
}

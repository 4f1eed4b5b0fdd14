import type { InferenceSession } from 'onnxruntime-node';
import { Worker } from 'node:worker_threads';
import type { Feeds } from '../inputs.js';

// A second thread in the onnxruntime host (side-worker.ts) that creates and runs one
// session while the host's own thread creates another: validation's two sessions of the
// quantized model (weights only, default optimization) are built at once, on the core the
// pool's worker leaves idle while it waits for them, instead of one after the other
// (bench/README.md, "HTTP: the event loop, round two"). A crash there still ends only the host.

export interface SideTensor {
  type: string;
  dims: number[];
  data: ArrayLike<number | bigint | string> & Iterable<unknown>;
}

export type SideRequest = { id: number; path?: string | undefined; options?: InferenceSession.SessionOptions; feeds: Record<string, SideTensor> };
export type SideReply = { id: number; ok: true; outputs: Record<string, SideTensor> } | { id: number; ok: false; message: string };

type Outputs = InferenceSession.ReturnType;

interface Pending {
  resolve(outputs: Outputs): void;
  reject(err: Error): void;
}

let worker: Worker | undefined;
const pending = new Map<number, Pending>();
let nextId = 1;

function start(): Worker {
  const w = new Worker(new URL('./side-worker.js', import.meta.url));
  w.unref();
  w.on('message', (reply: SideReply) => {
    const p = pending.get(reply.id);
    if (!p) return;
    pending.delete(reply.id);
    if (pending.size === 0) w.unref();
    if (reply.ok) p.resolve(reply.outputs as unknown as Outputs);
    else p.reject(new Error(reply.message));
  });
  const gone = (err: Error) => {
    if (worker === w) worker = undefined;
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  };
  w.on('error', gone);
  w.on('exit', (code) => gone(new Error(`the onnxruntime host's second thread exited (code ${code})`)));
  return w;
}

function ask(req: Omit<SideRequest, 'id'>): Promise<Outputs> {
  const w = (worker ??= start());
  const id = nextId++;
  w.ref();
  return new Promise<Outputs>((resolve, reject) => {
    pending.set(id, { resolve, reject });
    w.postMessage({ ...req, id });
  });
}

/** Starts the thread and loads onnxruntime in it, so the first real request does not wait for that. */
export function warmSide(): void {
  ask({ feeds: {} }).catch(() => {});
}

/** Creates a session of the model at `path` on the second thread, runs it on `feeds`, releases it: the outputs. */
export function runBeside(path: string, options: InferenceSession.SessionOptions, feeds: Feeds): Promise<Outputs> {
  const plain: Record<string, SideTensor> = {};
  for (const [name, t] of Object.entries(feeds)) plain[name] = { type: t.type, dims: [...t.dims], data: t.data as SideTensor['data'] };
  return ask({ path, options, feeds: plain });
}

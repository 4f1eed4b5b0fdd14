// piscina loads a worker file with require() first. On Node 20.19+ require() of an ES module
// graph loads it synchronously, and a pool closed while a worker is still loading can then
// abort the whole process (a V8 fatal error, seen in CI). This CommonJS entry sends every
// load down the asynchronous import() path instead; the real entry is named in workerData.
import { performance } from 'node:perf_hooks';
import { workerData } from 'node:worker_threads';

type Handler = (task: unknown) => unknown;

let handler: Promise<Handler> | undefined;

// piscina's valueSymbol (a registered symbol): a reply moved by transfer keeps its value under it.
const VALUE = Symbol.for('Piscina.valueOf');

/** Stamps the reply with the time the task took in this thread (the metrics' worker busy time). */
function stampBusy(result: unknown, ms: number): void {
  if (result === null || typeof result !== 'object') return;
  const value = (result as Record<symbol, unknown>)[VALUE] ?? result;
  if (value !== null && typeof value === 'object') (value as { busyMs?: number }).busyMs = ms;
}

export = async function run(task: unknown): Promise<unknown> {
  handler ??= import((workerData as { entry: string }).entry).then((m: { default: Handler }) => m.default);
  const handle = await handler;
  const t0 = performance.now();
  const result = await handle(task);
  stampBusy(result, performance.now() - t0);
  return result;
};

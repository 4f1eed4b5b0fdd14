// piscina loads a worker file with require() first. On Node 20.19+ require() of an ES module
// graph loads it synchronously, and a pool closed while a worker is still loading can then
// abort the whole process (a V8 fatal error, seen in CI). This CommonJS entry sends every
// load down the asynchronous import() path instead; the real entry is named in workerData.
import { workerData } from 'node:worker_threads';

type Handler = (task: unknown) => unknown;

let handler: Promise<Handler> | undefined;

export = async function run(task: unknown): Promise<unknown> {
  handler ??= import((workerData as { entry: string }).entry).then((m: { default: Handler }) => m.default);
  return (await handler)(task);
};

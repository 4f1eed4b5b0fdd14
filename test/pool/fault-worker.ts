import { receiveMessageOnPort, threadId, type MessagePort } from 'node:worker_threads';
import type { Task } from '../../src/pool/messages.js';
import handle from '../../src/pool/worker.js';
import { CHANNEL, FAULT_MARK, Fault, RELEASE_CHANNEL, type StartEvent } from './faults.js';

// Test-only worker entry: the production worker, plus faults chosen by the tensor's data.
const events = new BroadcastChannel(CHANNEL);
events.unref();
// Read synchronously while a task holds the thread, which runs no event loop then
// (receiveMessageOnPort takes a BroadcastChannel; @types/node names only MessagePort).
// Every release read is kept, so one meant for a later hold is not lost.
const releases = new BroadcastChannel(RELEASE_CHANNEL) as unknown as MessagePort;
releases.unref();
const released = new Set<number>();

/**
 * Blocks the thread, as a long CPU-bound task would, until the test releases `tag`. Past
 * `maxMs` unreleased it fails the task, so a test that forgot the release fails, not hangs.
 */
function hold(tag: number, maxMs: number): void {
  const tick = new Int32Array(new SharedArrayBuffer(4));
  const end = Date.now() + maxMs;
  while (!released.has(tag)) {
    if (Date.now() > end) throw new Error(`task ${tag} was held ${maxMs} ms and never released`);
    Atomics.wait(tick, 0, 0, 5);
    for (let m = receiveMessageOnPort(releases); m; m = receiveMessageOnPort(releases)) released.add(m.message as number);
  }
}

export default function faultyHandle(task: Task): ReturnType<typeof handle> {
  const data = task.op === 'quantize' && task.input.kind === 'json' ? (task.input.data as unknown[]) : [];
  const marked = data[0] === FAULT_MARK;
  const event: StartEvent = { tag: marked ? Number(data[3]) : null, threadId };
  events.postMessage(event);
  if (marked) {
    const fault = data[1];
    if (fault === Fault.crash) process.exit(1);
    // Atomics.wait blocks the thread as a long CPU-bound task would: only termination stops it.
    if (fault === Fault.sleep) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Number(data[2]));
    if (fault === Fault.hold) hold(Number(data[3]), Number(data[2]));
    if (fault === Fault.throw) throw new TypeError('an unexpected failure inside the worker');
  }
  return handle(task);
}

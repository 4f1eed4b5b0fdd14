import { threadId } from 'node:worker_threads';
import type { Task } from '../../src/pool/messages.js';
import handle from '../../src/pool/worker.js';
import { CHANNEL, FAULT_MARK, Fault, type StartEvent } from './faults.js';

// Test-only worker entry: the production worker, plus faults chosen by the tensor's data.
const events = new BroadcastChannel(CHANNEL);
events.unref();

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
    if (fault === Fault.throw) throw new TypeError('an unexpected failure inside the worker');
  }
  return handle(task);
}

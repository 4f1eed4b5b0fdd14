import type { Task } from '../../src/pool/messages.js';
import handle from '../../src/pool/worker.js';

// The production worker, plus one test-only trick for the load harness: a JSON tensor that
// starts with GC_MARK makes the worker collect its garbage first (the harness runs with
// --expose-gc), so memory is compared after every thread has collected, not just the main one.
export const GC_MARK = -777_777;

/** A full collection that also hands freed pages back to the system, as V8 does before giving up on memory. */
export const LAST_RESORT = { type: 'major', execution: 'sync', flavor: 'last-resort' };

export default function gcHandle(task: Task): ReturnType<typeof handle> {
  if (task.op === 'quantize' && task.input.kind === 'json' && task.input.data[0] === GC_MARK) {
    const gc = (globalThis as { gc?: (o?: object) => void }).gc;
    gc?.();
    gc?.(LAST_RESORT);
    // Hold the thread briefly so the next collection request lands on the other workers.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
  }
  return handle(task);
}

import { Errors } from '../errors.js';

// Cooperative cancellation for tasks that run onnxruntime. Terminating a worker thread while
// onnxruntime-node has work in flight aborts the whole process ("terminate called after
// throwing an instance of 'Napi::Error'"), so those tasks are never aborted through piscina:
// the caller raises a flag in shared memory and the task stops at its next checkpoint
// (between tensors, between onnxruntime sessions).

export type CancelFlag = Int32Array;

export function cancelFlag(): CancelFlag {
  return new Int32Array(new SharedArrayBuffer(4));
}

export function cancel(flag: CancelFlag): void {
  Atomics.store(flag, 0, 1);
}

export function isCancelled(flag: CancelFlag | undefined): boolean {
  return flag !== undefined && Atomics.load(flag, 0) !== 0;
}

export function checkpoint(flag: CancelFlag | undefined): void {
  if (isCancelled(flag)) throw new Errors.Aborted('the task was cancelled');
}

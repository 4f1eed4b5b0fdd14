import { after } from 'node:test';
import { QuantPool } from '../../src/pool/pool.js';

// A test-only worker entry (fault-worker.ts) misbehaves when a JSON tensor starts with
// FAULT_MARK; the production worker and API have no such switch.

export const FAULT_MARK = -424242;
export const CHANNEL = 'quantd-test-fault-events';
export const RELEASE_CHANNEL = 'quantd-test-fault-release';
export const FAULT_WORKER = new URL('./fault-worker.js', import.meta.url).href;

export const Fault = { none: 0, crash: 1, sleep: 2, throw: 3, hold: 4 } as const;

/** Event the fault worker broadcasts when it starts a task. */
export interface StartEvent {
  tag: number | null;
  threadId: number;
}

/**
 * Tensor data that makes the fault worker do `fault` (sleep takes `ms`; hold blocks until
 * `releaser().release(tag)`, and fails the task past `ms`); `tag` names the task in start events.
 */
export function faultData(fault: number, tag: number, ms = 0): number[] {
  return [FAULT_MARK, fault, ms, tag];
}

/** A pool of fault workers, closed when the test file ends. */
export function faultPool(workers: number, maxQueue: number): QuantPool {
  const pool = new QuantPool({ workers, maxQueue, filename: FAULT_WORKER });
  after(() => pool.close());
  return pool;
}

/** Records which tagged tasks the fault workers started. */
export function watchStarts(): { started: () => StartEvent[]; tags: () => Array<number | null> } {
  const events: StartEvent[] = [];
  const channel = new BroadcastChannel(CHANNEL);
  channel.onmessage = (e) => events.push((e as unknown as { data: StartEvent }).data);
  after(() => channel.close());
  return { started: () => [...events], tags: () => events.map((e) => e.tag) };
}

/** Ends the holds (Fault.hold) of tagged tasks: each fault worker reads this channel while it holds. */
export function releaser(): { release: (tag: number) => void } {
  const channel = new BroadcastChannel(RELEASE_CHANNEL);
  after(() => channel.close());
  return { release: (tag) => channel.postMessage(tag) };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls until `check` holds or `timeoutMs` passes; returns whether it held. The default is
 * generous: it only ends a test whose event never comes, and a loaded machine (load 10+)
 * can take seconds to start a worker.
 */
export async function eventually(check: () => boolean, timeoutMs = 30_000, everyMs = 10): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (check()) return true;
    await sleep(everyMs);
  }
  return check();
}

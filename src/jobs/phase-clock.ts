import type { JobPhase } from './types.js';

// How long one run of a job spends in each phase, for the metrics: the wait in the queue
// (first attempt only: a re-run's wait is not the user's), 'decoding' from the start of the
// task until its first progress message, then each worker phase until the next. Both runners
// (local and queue) time their jobs with it, so /metrics means the same on either store.

export type TimedPhase = JobPhase | 'decoding';
export type PhaseObserver = (phase: TimedPhase, seconds: number) => void;

export class PhaseClock {
  #phase: TimedPhase = 'queued';
  #start: number;

  /** `observer` is read at each change: the metrics attach theirs after the runner exists. */
  constructor(
    private readonly observer: () => PhaseObserver | undefined,
    job: { attempts: number; created_at: string },
  ) {
    this.#start = job.attempts === 0 ? Date.parse(job.created_at) : Date.now();
  }

  enter(next: TimedPhase): void {
    if (next === this.#phase) return;
    const now = Date.now();
    this.observer()?.(this.#phase, Math.max(0, now - this.#start) / 1000);
    this.#phase = next;
    this.#start = now;
  }
}

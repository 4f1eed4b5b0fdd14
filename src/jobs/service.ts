import type { PhaseObserver } from './phase-clock.js';
import type { JobStore } from './types.js';

// What the HTTP layer needs from whatever runs jobs: the in-process JobRunner (local store)
// or the QueueJobRunner (BullMQ on Redis, shared by replicas).
export interface JobService {
  readonly store: JobStore;
  start(): Promise<void>;
  close(): Promise<void>;
  /** When a job created or finished now expires (ISO time). */
  expiry(): string;
  enqueue(id: string): void | Promise<void>;
  /** Stops a job wherever it runs, and deletes it with its files. */
  cancel(id: string): Promise<void>;
  /** A job being deleted: hidden from callers while its task winds down. */
  isDeleting(id: string): boolean;
  /** False while the queue cannot take jobs (readiness). */
  ready(): boolean;
  /** Told how long each phase of a job run by this replica took (metrics), by both runners. */
  phaseObserver?: PhaseObserver | undefined;
}

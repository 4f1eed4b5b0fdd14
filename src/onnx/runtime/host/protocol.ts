import type { FusedOpsReport } from '../fused-ops.js';
import type { UserArray } from '../inputs.js';
import type { LatencyOptions, LatencyReport } from '../latency.js';
import type { Skipped, ValidationReport } from '../validate.js';

// The messages between a worker and its onnxruntime host process (host/child.ts). Models
// travel as file paths (the host stages in-memory models to files first), results as plain
// values through Node's structured-clone IPC. A reference run's inputs and outputs stay in
// the host under a number, so the quantized runs compare against them without a round trip.

export interface ReferenceOptions {
  user?: Map<string, UserArray> | undefined;
  dims?: Readonly<Record<string, number>> | undefined;
  threads?: number | undefined;
  maxElements?: number | undefined;
}

export type HostLatencyOptions = Omit<LatencyOptions, 'checkpoint'>;

export type HostRequest = (
  | { op: 'reference'; model: string; opts: ReferenceOptions }
  /** atOnce: the two sessions of the quantized model are created at once, on two threads (twice the memory for them). */
  | { op: 'compare'; ref: number; model: string; atOnce?: boolean | undefined }
  | { op: 'release'; ref: number }
  | { op: 'latency'; original: string; quantized: string; opts: HostLatencyOptions }
  | { op: 'fusedOps'; model: string }
  | { op: 'ping' }
) & {
  id: number;
  /**
   * Staging directories the host removes when it is done with the request, or when the
   * worker that sent it goes away first (a terminated worker runs no cleanup of its own).
   */
  cleanup?: string[] | undefined;
};

/** What the reference run leaves in the host: a handle, or why there is none. */
export type ReferenceReply = { ref: number; threads: number } | Skipped;

export type HostValue = ReferenceReply | ValidationReport | LatencyReport | FusedOpsReport | null;

export type HostReply =
  | { id: number; ok: true; value: HostValue }
  /** quant: the error is one the caller must fix (a QUANT_ERR_* code), to be answered as a 4xx. */
  | { id: number; ok: false; message: string; code?: string | undefined };

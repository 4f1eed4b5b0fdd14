import type { ActivationRange, CalibrateOptions } from '../../activations/calibrate.js';
import type { CalibrationInput } from '../../activations/calibration-data.js';
import type { StatsRequest } from '../../activations/weight-stats.js';
import type { ActivationErrors } from '../activation-error.js';
import type { FusedOpsReport } from '../fused-ops.js';
import type { HeldBackOutput } from '../held-back.js';
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

/**
 * A model staged for the host: its file, and whether its external data files are staged
 * beside it (augmented copies are then written there too, see session-model.ts).
 */
export interface HostModel {
  path: string;
  beside: boolean;
}

/**
 * Calibration samples as the host makes them again (host-samples.ts): samples first ..
 * first + count − 1 of the seeded N(0, 1) data, or of the arrays the worker wrote to a file
 * (one column per input, each sample's bytes contiguous, column k at columns[k].offset).
 */
export interface SampleSpec {
  count: number;
  first: number;
  source: 'user' | 'random';
  inputs: CalibrationInput[];
  data: { kind: 'random'; seed: number } | { kind: 'file'; path: string; columns: { offset: number; sampleBytes: number }[] };
}

export type HostCalibrateOptions = Omit<CalibrateOptions, 'signal' | 'cancel' | 'externalData' | 'besideDir' | 'onSample'>;

/** One batch's statistics, written by the host to `file` (float64: per activation sumSq, sumAbs, then xtx when present). */
export interface StatsFile {
  file: string;
  /** By stats key; xtxLength 0 when there is no xtx. */
  stats: { name: string; k: number; rows: number; xtxLength: number }[];
  /** The batch's pass as forEachStatsBatch counted it. */
  peakBytes: number;
  activations: number;
}

export type HostRequest = (
  | { op: 'reference'; model: string; opts: ReferenceOptions }
  /** atOnce: the two sessions of the quantized model are created at once, on two threads (twice the memory for them). */
  | { op: 'compare'; ref: number; model: string; atOnce?: boolean | undefined }
  | { op: 'release'; ref: number }
  | { op: 'latency'; original: string; quantized: string; opts: HostLatencyOptions }
  | { op: 'fusedOps'; model: string }
  | { op: 'calibrate'; model: HostModel; names: string[]; samples: SampleSpec; opts: HostCalibrateOptions }
  | { op: 'activationErrors'; float: HostModel; quantized: HostModel; tensors: string[]; samples: SampleSpec; renamed: [string, string][]; threads?: number | undefined }
  | { op: 'statsBatch'; model: HostModel; batch: StatsRequest[]; samples: SampleSpec; full: boolean; maxBytes: number; out: string }
  | { op: 'heldBack'; float: string; quantized: string; samples: SampleSpec }
  | { op: 'ping' }
) & {
  id: number;
  /**
   * Staging directories the host removes when it is done with the request, or when the
   * worker that sent it goes away first (a terminated worker runs no cleanup of its own).
   */
  cleanup?: string[] | undefined;
  /**
   * Staging directories that this request and later ones read (a request's float model and
   * samples): removed when the worker goes away, or by the request that names them in cleanup.
   */
  holds?: string[] | undefined;
};

/** What the reference run leaves in the host: a handle, or why there is none. */
export type ReferenceReply = { ref: number; threads: number } | Skipped;

export type HostValue = ReferenceReply | ValidationReport | LatencyReport | FusedOpsReport | Map<string, ActivationRange> | ActivationErrors | StatsFile | HeldBackOutput[] | null;

export type HostReply =
  | { id: number; ok: true; value: HostValue }
  /** Samples run so far, and in all: calibration's progress, sent while the request runs. */
  | { id: number; progress: [number, number] }
  /** quant: the error is one the caller must fix (a QUANT_ERR_* code), to be answered as a 4xx. */
  | { id: number; ok: false; message: string; code?: string | undefined };

import type { Readable, Writable } from 'node:stream';
import type { CheckpointReport } from '../checkpoints/quantize-checkpoint.js';
import type { ModelTaskOptions, WeightsTaskOptions } from '../pool/messages.js';
import type { ModelSummary } from '../pool/tasks/model-reply.js';
import type { StorageLedger } from '../pool/storage-ledger.js';

// Jobs for models too big or too slow for one request. The store is an interface so that
// several replicas can share one (e.g. Redis for records and events, object storage for
// files); LocalJobStore keeps everything in JOBS_DIR and is the default.

export const JOB_STATUSES = ['queued', 'running', 'succeeded', 'failed'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
/** 'reference': the float model runs in onnxruntime first, for validation. 'calibrating': format=static, sample by sample. */
export const JOB_PHASES = ['queued', 'reference', 'calibrating', 'quantizing', 'writing', 'validating', 'done'] as const;
export type JobPhase = (typeof JOB_PHASES)[number];

export interface JobProgress {
  phase: JobPhase;
  tensors_done: number;
  tensors_total: number;
  bytes_done: number;
  bytes_total: number;
  /** format=static: calibration samples run so far, of samples_total. */
  samples_done?: number | undefined;
  samples_total?: number | undefined;
  /** 0..1, never decreasing; 1 exactly when the job has succeeded. */
  fraction: number;
}

export interface StoredFile {
  /** The name the user gave it: 'model', 'inputs', or an external data location. */
  name: string;
  /** Path relative to the job's input directory. */
  file: string;
  size: number;
}

export interface Artifact {
  name: string;
  size: number;
  crc: number;
}

/** model: an ONNX model (POST /v1/jobs); weights: a safetensors checkpoint (POST /v1/weights/jobs). */
export const JOB_KINDS = ['model', 'weights'] as const;
export type JobKind = (typeof JOB_KINDS)[number];

export interface JobRecord {
  id: string;
  /** Absent in records written before weights jobs existed: a model job. */
  kind?: JobKind | undefined;
  status: JobStatus;
  created_at: string;
  updated_at: string;
  expires_at: string;
  /** How many times a worker has started it (a restart re-queues interrupted jobs once). */
  attempts: number;
  filename: string;
  /** WeightsTaskOptions for a weights job. */
  options: ModelTaskOptions | WeightsTaskOptions;
  /** A weights job: the index (name 'index') when sharded, else the one shard. */
  model: StoredFile;
  /** External data files; for a weights job the shards and config.json. */
  external: StoredFile[];
  inputs: StoredFile | undefined;
  /** format=static: the calibration .npz. */
  calibration?: StoredFile | undefined;
  progress: JobProgress;
  /** The report's summary once the job has succeeded. */
  summary?: ModelSummary | CheckpointReport['summary'] | undefined;
  /** X-Quantization-Summary of the result. */
  summary_header?: string | undefined;
  error?: { code: string; message: string } | undefined;
  /** The result files: one .onnx, or the .onnx and its external data (served as a zip). */
  artifacts?: Artifact[] | undefined;
  /** Where the shared store keeps this attempt's results (per attempt: never mixed). */
  results_dir?: string | undefined;
  /** Bytes this job holds on disk (inputs and results). */
  bytes: number;
}

export type JobEvent = { type: 'progress'; job: JobRecord } | { type: 'end'; job: JobRecord };

export interface JobStore {
  /** Reserves a new job; its inputs are then written with inputWriter and it is committed. */
  create(id: string, ttlSeconds: number): Promise<void>;
  /** A stream for one uploaded file; `file` is a safe relative path. */
  inputWriter(id: string, file: string): Promise<Writable>;
  commit(record: JobRecord): Promise<void>;
  get(id: string): Promise<JobRecord | undefined>;
  update(id: string, patch: Partial<JobRecord>): Promise<JobRecord | undefined>;
  /** Local paths of a job's input and output directories, for the worker that runs it. */
  workDirs(id: string): Promise<{ input: string; output: string }>;
  /** Saves the report beside the artifacts the worker wrote into the output directory. */
  saveReport(id: string, report: unknown): Promise<void>;
  openArtifact(id: string, name: string): Promise<Readable>;
  /** A time-limited URL to download an artifact directly (object stores only). */
  artifactUrl?(id: string, name: string, expiresInS: number): Promise<string>;
  readReport(id: string): Promise<unknown>;
  delete(id: string): Promise<void>;
  list(): Promise<JobRecord[]>;
  /** Bytes held by all jobs (with a ledger: also what is being written, spill files included). */
  usage(): Promise<number>;
  /**
   * A store whose files are on this machine counts them here from before each is written
   * (uploads, spill files, results) until it is deleted, so that JOBS_MAX_BYTES bounds them;
   * a committed record keeps what its upload and results reserved, and delete() gives it back.
   */
  readonly ledger?: StorageLedger | undefined;
  subscribe(id: string, listener: (e: JobEvent) => void): () => void;
  publish(e: JobEvent): void;
}

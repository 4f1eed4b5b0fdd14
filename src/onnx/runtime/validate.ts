import type { InferenceSession } from 'onnxruntime-node';
import { performance } from 'node:perf_hooks';
import { compareOutputs, type OutputComparison } from './compare.js';
import { loadOrt } from './ort.js';
import { makeFeeds, VALIDATION_SEED, type Feeds, type InputDescription, type UserArray } from './inputs.js';

// Runs the float model and the quantized one in onnxruntime on the same inputs and says how
// far each output moved. Sessions are created one after another and released at once, so
// at most one model is loaded in onnxruntime at a time.
//
// onnxruntime's default optimization fuses DequantizeLinear → MatMul into MatMulNBits with
// accuracy_level 4, which also quantizes the activations (ONNX-NOTES): the `weights_only`
// run turns that off to measure what the weights alone cost; `default_optimization` is what
// a user deploying with onnxruntime's defaults gets.

export const WEIGHTS_ONLY_SETTINGS = "graphOptimizationLevel 'all', session config qdq_matmulnbits_accuracy_level '0'";
export const DEFAULT_SETTINGS = "graphOptimizationLevel 'all' (onnxruntime's defaults)";

export interface ValidationRun {
  session_options: string;
  outputs: OutputComparison[];
}

export type ValidationReport =
  | {
      status: 'ok';
      seed: number;
      inputs: InputDescription[];
      weights_only: ValidationRun;
      default_optimization: ValidationRun;
      elapsed_ms: number;
    }
  /** skipped: nothing to compare against (validate=false, or the float model does not run). */
  | { status: 'skipped'; reason: string }
  /** error: the float model runs but the quantized one does not. */
  | { status: 'error'; reason: string };

/** A model in memory (with its external data files, by location) or on disk. */
export type ModelBytes =
  | {
      bytes: Uint8Array;
      externalData?: { path: string; data: Uint8Array }[] | undefined;
    }
  | { path: string };

type Outputs = InferenceSession.ReturnType;

export function baseOptions(threads: number): InferenceSession.SessionOptions {
  // One thread per session: the worker pool already runs one task per core.
  // No arena: memory a validation run used goes back at once instead of staying reserved.
  return { intraOpNumThreads: threads, interOpNumThreads: 1, logSeverityLevel: 3, enableCpuMemArena: false };
}

export async function withSession<T>(model: ModelBytes, options: InferenceSession.SessionOptions, fn: (s: InferenceSession) => Promise<T>): Promise<T> {
  const ort = await loadOrt();
  // From a path onnxruntime finds external data beside the file itself.
  const session =
    'path' in model
      ? await ort.InferenceSession.create(model.path, options)
      : await ort.InferenceSession.create(model.bytes, { ...options, externalData: model.externalData });
  try {
    return await fn(session);
  } finally {
    await session.release();
  }
}

function compareAll(names: readonly string[], ref: Outputs, got: Outputs): OutputComparison[] {
  const out: OutputComparison[] = [];
  for (const name of names) {
    const a = ref[name];
    const b = got[name];
    if (!a || !b || !('data' in a) || !('data' in b)) continue;
    if (typeof a.data[0] === 'string' || a.type === 'bool') continue;
    out.push(compareOutputs(name, a.dims as number[], a.data as ArrayLike<number>, b.data as ArrayLike<number>));
  }
  return out;
}

export function message(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!.slice(0, 500);
}

/** The float model's outputs, computed first so its session is gone before quantizing starts. */
export interface Reference {
  feeds: Feeds;
  inputs: InputDescription[];
  outputs: Outputs;
  names: readonly string[];
  elapsedMs: number;
  threads: number;
}

export type Skipped = Extract<ValidationReport, { status: 'skipped' }>;

function sessionOptions(threads: number) {
  const base = baseOptions(threads);
  const weightsOnly: InferenceSession.SessionOptions = { ...base, extra: { session: { qdq_matmulnbits_accuracy_level: '0' } } };
  return { base, weightsOnly };
}

export async function referenceRun(original: ModelBytes, opts: { user?: Map<string, UserArray> | undefined; threads?: number } = {}): Promise<Reference | Skipped> {
  const t0 = performance.now();
  const threads = opts.threads ?? 1;
  try {
    const made = await withSession(original, sessionOptions(threads).weightsOnly, async (s) => {
      const fed = makeFeeds((await loadOrt()).Tensor, s.inputMetadata, opts.user);
      if (typeof fed === 'string') return fed;
      return { ...fed, outputs: await s.run(fed.feeds), names: s.outputNames };
    });
    if (typeof made === 'string') return { status: 'skipped', reason: made };
    return { ...made, elapsedMs: performance.now() - t0, threads };
  } catch (err) {
    return { status: 'skipped', reason: `onnxruntime cannot run the original model: ${message(err)}` };
  }
}

/** `checkpoint` runs before each session and may throw to stop (a cancelled task). */
export async function compareRun(ref: Reference, quantized: ModelBytes, checkpoint: () => void = () => {}): Promise<ValidationReport> {
  const t0 = performance.now();
  const { base, weightsOnly } = sessionOptions(ref.threads);
  const runs: ValidationRun[] = [];
  for (const [options, label] of [
    [weightsOnly, WEIGHTS_ONLY_SETTINGS],
    [base, DEFAULT_SETTINGS],
  ] as const) {
    checkpoint();
    try {
      const got = await withSession(quantized, options, (s) => s.run(ref.feeds));
      runs.push({ session_options: label, outputs: compareAll(ref.names, ref.outputs, got) });
    } catch (err) {
      return { status: 'error', reason: `onnxruntime cannot run the quantized model (${label}): ${message(err)}` };
    }
  }
  return {
    status: 'ok',
    seed: VALIDATION_SEED,
    inputs: ref.inputs,
    weights_only: runs[0]!,
    default_optimization: runs[1]!,
    elapsed_ms: Math.round(ref.elapsedMs + performance.now() - t0),
  };
}

/** Both steps at once, for callers that hold both models anyway. */
export async function validateModels(original: ModelBytes, quantized: ModelBytes, opts: { user?: Map<string, UserArray> | undefined; threads?: number } = {}): Promise<ValidationReport> {
  const ref = await referenceRun(original, opts);
  return 'status' in ref ? ref : compareRun(ref, quantized);
}

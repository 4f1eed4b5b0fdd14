import type { InferenceSession } from 'onnxruntime-node';
import { performance } from 'node:perf_hooks';
import { compareOutputs, type OutputComparison } from './compare.js';
import { loadOrt } from './ort.js';
import { makeFeeds, VALIDATION_SEED, type Feeds, type InputDescription, type MadeFeeds, type UserArray } from './inputs.js';
import { isQuantError } from '../../errors.js';

// Runs the float model and the quantized one in onnxruntime on the same inputs and says how
// far each output moved. Sessions are released as soon as they have run: the float model's
// before the quantized ones are created, and the quantized model's two (weights only,
// default optimization) are created one after the other, or at once on two threads when
// the caller gives a second one (compareRun's `elsewhere`, the onnxruntime host).
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

interface Compared {
  seed: number;
  inputs: InputDescription[];
  /** The value each symbolic dimension of the generated inputs took. */
  dims: Record<string, number>;
  weights_only: ValidationRun;
  default_optimization: ValidationRun;
  elapsed_ms: number;
}

export type ValidationReport =
  | ({ status: 'ok' } & Compared)
  /**
   * inconclusive: both models ran, but every output is constant (or all zero) on both, so
   * the figures say nothing about the weights; `what_to_send` says how to get a real test.
   */
  | ({ status: 'inconclusive'; reason: string; what_to_send: string } & Compared)
  /** skipped: nothing to compare against (validate=false, or the float model does not run). */
  | { status: 'skipped'; reason: string; what_to_send?: string }
  /** error: the float model runs but the quantized one does not. */
  | { status: 'error'; reason: string };

export interface ValidationOptions {
  user?: Map<string, UserArray> | undefined;
  /** Values for symbolic dimensions by name. */
  dims?: Readonly<Record<string, number>> | undefined;
  threads?: number;
  maxElements?: number;
}

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
  dims: Record<string, number>;
  defaulted: string[];
  /** Whether any input came from the caller's .npz. */
  userInputs: boolean;
  outputs: Outputs;
  names: readonly string[];
  elapsedMs: number;
  threads: number;
}

export type Skipped = Extract<ValidationReport, { status: 'skipped' }>;

function sessionOptions(threads: number) {
  const base = baseOptions(threads);
  const weightsOnly: InferenceSession.SessionOptions = { ...base, extra: { session: { qdq_matmulnbits_accuracy_level: '0' } } };
  // The float model runs once: prepacking its weights for the GEMM kernels (a second copy
  // of every MatMul weight, made at session creation) costs more than it saves. Its outputs
  // are the same bit for bit (bench/README.md, "HTTP: the event loop, round two"). The
  // optimization level stays: it decides which models onnxruntime can load at all.
  const reference: InferenceSession.SessionOptions = { ...base, extra: { session: { qdq_matmulnbits_accuracy_level: '0', 'session.disable_prepacking': '1' } } };
  return { base, weightsOnly, reference };
}

/** What to send when the inputs we made were not enough: the defaulted dims first. */
function whatToSend(defaulted: readonly string[], userInputs: boolean): string {
  if (defaulted.length) {
    return (
      `dims=${defaulted.map((d) => `${d}:<size>`).join(',')} with the sizes the model is meant for ` +
      `(the symbolic dimension${defaulted.length === 1 ? '' : 's'} ${defaulted.join(', ')} ${defaulted.length === 1 ? 'was' : 'were'} set to 1), or an inputs .npz of real data`
    );
  }
  return userInputs ? 'inputs on which the outputs vary (an inputs .npz of real data)' : 'an inputs .npz of real data, named like the model inputs';
}

export async function referenceRun(original: ModelBytes, opts: ValidationOptions = {}): Promise<Reference | Skipped> {
  const t0 = performance.now();
  const threads = opts.threads ?? 1;
  const feedOptions = { dims: opts.dims, maxElements: opts.maxElements ?? Number.MAX_SAFE_INTEGER };
  let fed: MadeFeeds | undefined;
  try {
    const made = await withSession(original, sessionOptions(threads).reference, async (s) => {
      const f = makeFeeds((await loadOrt()).Tensor, s.inputMetadata, opts.user, feedOptions);
      if ('reason' in f) return f;
      fed = f;
      return { ...f, outputs: await s.run(f.feeds), names: s.outputNames };
    });
    if ('reason' in made) return { status: 'skipped', reason: made.reason, what_to_send: made.send };
    return { ...made, userInputs: opts.user !== undefined && opts.user.size > 0, elapsedMs: performance.now() - t0, threads };
  } catch (err) {
    // A request the caller must fix (an unknown dims name, too many elements) is a 4xx, not a skip.
    if (isQuantError(err)) throw err;
    const made = fed as MadeFeeds | undefined;
    // No feeds yet: onnxruntime could not even load the model, and no input will change that.
    if (!made) {
      return { status: 'skipped', reason: `onnxruntime cannot run the original model: ${message(err)}`, what_to_send: 'no input helps: onnxruntime cannot load the model (validate=false skips validation)' };
    }
    return {
      status: 'skipped',
      reason: `onnxruntime cannot run the original model on the inputs made for it (${describeInputs(made)}): ${message(err)}`,
      what_to_send: whatToSend(made.defaulted, opts.user !== undefined && opts.user.size > 0),
    };
  }
}

function describeInputs(fed: MadeFeeds): string {
  return fed.inputs.map((i) => `${i.name} ${i.dtype}[${i.shape.join(', ')}] ${i.source}`).join('; ');
}

/**
 * Creates a session of a model on disk with these options somewhere else (another thread),
 * runs it on the feeds and releases it: its outputs.
 */
export type RunElsewhere = (path: string, options: InferenceSession.SessionOptions, feeds: Feeds) => Promise<Outputs>;

/**
 * `checkpoint` runs before each session and may throw to stop (a cancelled task). With
 * `elsewhere` (the onnxruntime host's second thread) and a model on disk, the default
 * optimization's session is created there while the weights-only one is created here: two
 * quantized sessions at once, in about the time of one.
 */
export async function compareRun(ref: Reference, quantized: ModelBytes, checkpoint: () => void = () => {}, elsewhere?: RunElsewhere): Promise<ValidationReport> {
  const t0 = performance.now();
  const { base, weightsOnly } = sessionOptions(ref.threads);
  const runs: ValidationRun[] = [];
  const here = (options: InferenceSession.SessionOptions) => withSession(quantized, options, (s) => s.run(ref.feeds));
  checkpoint();
  const beside = elsewhere && 'path' in quantized ? elsewhere(quantized.path, base, ref.feeds) : undefined;
  // Settled either way: a failure is reported below, in the order of the runs.
  beside?.catch(() => {});
  for (const [options, label] of [
    [weightsOnly, WEIGHTS_ONLY_SETTINGS],
    [base, DEFAULT_SETTINGS],
  ] as const) {
    if (!beside) checkpoint();
    try {
      const got = await (options === base && beside ? beside : here(options));
      runs.push({ session_options: label, outputs: compareAll(ref.names, ref.outputs, got) });
    } catch (err) {
      return { status: 'error', reason: `onnxruntime cannot run the quantized model (${label}): ${message(err)}` };
    }
  }
  const compared: Compared = {
    seed: VALIDATION_SEED,
    inputs: ref.inputs,
    dims: ref.dims,
    weights_only: runs[0]!,
    default_optimization: runs[1]!,
    elapsed_ms: Math.round(ref.elapsedMs + performance.now() - t0),
  };
  const outputs = runs[0]!.outputs;
  // Constant outputs match whatever the weights are (cosine 1 at a 1x1 image): never 'ok'.
  if (outputs.every((o) => o.constant)) {
    const what = outputs.length === 0 ? 'the model has no numeric outputs to compare' : `every output is constant on both models (${outputs.map((o) => `${o.name}: ${constantKind(ref.outputs[o.name])}`).join('; ')})`;
    return { status: 'inconclusive', reason: `${what}, so the comparison says nothing about the quantized weights`, what_to_send: whatToSend(ref.defaulted, ref.userInputs), ...compared };
  }
  return { status: 'ok', ...compared };
}

function constantKind(t: Outputs[string] | undefined): string {
  const data = t && 'data' in t ? (t.data as ArrayLike<number | bigint>) : undefined;
  if (!data || data.length === 0) return 'empty';
  const v = Number(data[0]!);
  // One element cannot show whether the output varies, and its cosine is always ±1.
  if (data.length === 1) return `a single value, ${v}`;
  return v === 0 ? 'all zero' : `every element ${v}`;
}

/** Both steps at once, for callers that hold both models anyway. */
export async function validateModels(original: ModelBytes, quantized: ModelBytes, opts: ValidationOptions = {}): Promise<ValidationReport> {
  const ref = await referenceRun(original, opts);
  return 'status' in ref ? ref : compareRun(ref, quantized);
}

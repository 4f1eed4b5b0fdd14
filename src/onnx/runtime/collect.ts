import type { InferenceSession, Tensor } from 'onnxruntime-node';
import { halfToFloat } from '../../core/float16.js';
import { Errors } from '../../errors.js';
import { encodeModelBytes } from '../proto/encode.js';
import type { OnnxModel, OnnxValueInfo } from '../proto/model.js';
import { Parts } from '../proto/wire.js';
import type { CalibrationSamples } from '../activations/calibration-data.js';
import { checkpoint, type CancelFlag } from '../../pool/cancel.js';
import { baseOptions, message, withSession } from './validate.js';

// Runs the float model on calibration samples with chosen intermediate tensors exposed, and
// hands each sample's values to a callback before the next sample runs: nothing is kept
// between samples, so memory is the session plus one sample's activations, whatever N is
// (onnxruntime's own calibrator keeps every batch's outputs: its users hit > 256 GB).
//
// The tensors become extra outputs of a copy of the main graph. Their type comes from the
// model's value_info when it has one; otherwise the output is declared with a name only and
// onnxruntime infers its type when it resolves the graph. Optimization is disabled, as in
// onnxruntime's calibrator, so fusions cannot make the named tensors disappear. Tensors inside
// subgraphs (If/Loop/Scan bodies) cannot be exposed this way and are refused.

export interface IntermediateValue {
  /** The values as float32 (float16, float64 and integer tensors are converted). */
  data: Float32Array;
  dims: readonly number[];
}

export type ExternalDataFiles = { path: string; data: Uint8Array }[];

export interface CollectOptions {
  signal?: AbortSignal | undefined;
  /** The pool's cancellation flag (pool/cancel.ts), checked with `signal` between samples. */
  cancel?: CancelFlag | undefined;
  /** The model's external data files, by the location its tensors name. */
  externalData?: ExternalDataFiles | undefined;
  /** onnxruntime's intra-op threads; 1 by default, as every session of the pool. */
  intraOpNumThreads?: number | undefined;
}

function stopIfCancelled(opts: CollectOptions): void {
  if (opts.signal?.aborted) throw new Errors.Aborted('the task was cancelled');
  checkpoint(opts.cancel);
}

/** A value_info with the name only: onnxruntime infers the type of such a graph output. */
function untyped(name: string): OnnxValueInfo {
  return { name, src: new Parts().stringField(1, name).concat() };
}

interface Plan {
  /** Names to fetch from the session (intermediates and graph outputs). */
  fetches: string[];
  /** Names that are graph inputs: their values are the sample's feeds. */
  fromFeeds: string[];
  augmented: OnnxModel;
}

function plan(model: OnnxModel, tensorNames: readonly string[]): Plan {
  const g = model.graph;
  const initializers = new Set(g.initializers.map((t) => t.name));
  const inputs = new Set(g.inputs.map((v) => v.name).filter((n) => !initializers.has(n)));
  const outputs = new Set(g.outputs.map((v) => v.name));
  const produced = new Set<string>();
  for (const n of g.nodes) for (const o of n.outputs) if (o !== '') produced.add(o);
  const typed = new Map<string, OnnxValueInfo>();
  for (const v of g.valueInfo) typed.set(v.name, v);
  const fetches: string[] = [];
  const fromFeeds: string[] = [];
  const added: OnnxValueInfo[] = [];
  for (const name of new Set(tensorNames)) {
    if (inputs.has(name)) fromFeeds.push(name);
    else if (initializers.has(name)) throw new Errors.Calibration(`calibration: tensor '${name}' is an initializer (a constant), not an activation`);
    else if (!produced.has(name)) throw new Errors.Calibration(`calibration: no node of the model's main graph produces a tensor '${name}'`);
    else {
      fetches.push(name);
      if (!outputs.has(name)) added.push(typed.get(name) ?? untyped(name));
    }
  }
  const augmented: OnnxModel = { ...model, graph: { ...g, outputs: [...g.outputs, ...added] } };
  return { fetches, fromFeeds, augmented };
}

function asFloat32(t: Tensor): Float32Array {
  const d = t.data;
  switch (t.type) {
    case 'float32':
      return d as Float32Array;
    case 'float16': {
      const h = d as Uint16Array;
      const out = new Float32Array(h.length);
      for (let i = 0; i < h.length; i++) out[i] = halfToFloat(h[i]!);
      return out;
    }
    case 'int64':
    case 'uint64':
      return Float32Array.from(d as BigInt64Array, (v) => Number(v));
    default:
      if (typeof (d as ArrayLike<unknown>)[0] === 'string') throw new Errors.Calibration(`calibration: a string tensor cannot be calibrated`);
      return Float32Array.from(d as ArrayLike<number>);
  }
}

/**
 * Runs every sample in order through ONE session and calls onSample with the named tensors'
 * values; onSample's promise is awaited before the next sample runs. A model onnxruntime cannot
 * load or run is a 400 with onnxruntime's reason; cancellation (signal or flag) is checked
 * before each sample and throws QUANT_ERR_ABORTED.
 */
export async function runWithIntermediates(
  model: OnnxModel,
  tensorNames: readonly string[],
  samples: CalibrationSamples,
  onSample: (index: number, values: ReadonlyMap<string, IntermediateValue>) => void | Promise<void>,
  opts: CollectOptions = {},
): Promise<void> {
  stopIfCancelled(opts);
  const { fetches, fromFeeds, augmented } = plan(model, tensorNames);
  let bytes: Uint8Array | undefined = encodeModelBytes(augmented);
  const options: InferenceSession.SessionOptions = { ...baseOptions(opts.intraOpNumThreads ?? 1), graphOptimizationLevel: 'disabled' };
  let session: InferenceSession | undefined;
  await withSession({ bytes, externalData: opts.externalData }, options, async (s) => {
    session = s;
    bytes = undefined; // onnxruntime holds its own copy now
    for (let i = 0; i < samples.count; i++) {
      stopIfCancelled(opts);
      const feeds = samples.feeds(i);
      let got: InferenceSession.ReturnType = {};
      if (fetches.length) {
        try {
          got = await s.run(feeds, fetches);
        } catch (err) {
          throw new Errors.Onnx(`onnxruntime cannot run the model on calibration sample ${i}: ${message(err)}`);
        }
      }
      const values = new Map<string, IntermediateValue>();
      for (const name of fetches) {
        const t = got[name];
        if (!t) throw new Errors.Onnx(`onnxruntime returned no value for tensor '${name}' on calibration sample ${i}`);
        values.set(name, { data: asFloat32(t), dims: t.dims });
      }
      for (const name of fromFeeds) {
        const t = feeds[name]!;
        values.set(name, { data: asFloat32(t), dims: t.dims });
      }
      await onSample(i, values);
    }
  }).catch((err: unknown) => {
    if (session === undefined) {
      throw new Errors.Onnx(`onnxruntime cannot load the model for calibration: ${message(err)}`);
    }
    throw err;
  });
}

import type { InferenceSession, Tensor } from 'onnxruntime-node';
import { halfToFloat } from '../../core/float16.js';
import { Errors } from '../../errors.js';
import { attrs, floatTensor, int64Tensor, node } from '../graph/build.js';
import { encodeModelBytes } from '../proto/encode.js';
import { DataType, type OnnxModel, type OnnxNode, type OnnxValueInfo } from '../proto/model.js';
import { elementTypes } from '../graph/element-types.js';
import { Parts } from '../proto/wire.js';
import type { CalibrationSamples } from '../activations/calibration-data.js';
import { checkpoint, type CancelFlag } from '../../pool/cancel.js';
import { baseOptions, message, withSession } from './validate.js';
import { uniqueIn } from '../graph/edit.js';
import { placeModel } from './session-model.js';

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
  /** In the onnxruntime host: the directory of the staged model's external data (session-model.ts). */
  besideDir?: string | undefined;
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

/** The main graph's facts the plans need, and the check that each name is an activation of it. */
function graphFacts(model: OnnxModel, tensorNames: readonly string[]) {
  const g = model.graph;
  const initializers = new Set(g.initializers.map((t) => t.name));
  const inputs = new Set(g.inputs.map((v) => v.name).filter((n) => !initializers.has(n)));
  const outputs = new Set(g.outputs.map((v) => v.name));
  const produced = new Set<string>();
  for (const n of g.nodes) for (const o of n.outputs) if (o !== '') produced.add(o);
  const typed = new Map<string, OnnxValueInfo>();
  for (const v of [...g.valueInfo, ...g.inputs, ...g.outputs]) typed.set(v.name, v);
  const names = [...new Set(tensorNames)];
  for (const name of names) {
    if (inputs.has(name)) continue;
    if (initializers.has(name)) throw new Errors.Calibration(`calibration: tensor '${name}' is an initializer (a constant), not an activation`);
    if (!produced.has(name)) throw new Errors.Calibration(`calibration: no node of the model's main graph produces a tensor '${name}'`);
  }
  return { g, names, inputs, outputs, produced, typed, initializers };
}

function plan(model: OnnxModel, tensorNames: readonly string[]): Plan {
  const { g, names, inputs, outputs, typed } = graphFacts(model, tensorNames);
  const fetches: string[] = [];
  const fromFeeds: string[] = [];
  const added: OnnxValueInfo[] = [];
  for (const name of names) {
    if (inputs.has(name)) fromFeeds.push(name);
    else {
      fetches.push(name);
      if (!outputs.has(name)) added.push(typed.get(name) ?? untyped(name));
    }
  }
  const augmented: OnnxModel = { ...model, graph: { ...g, outputs: [...g.outputs, ...added] } };
  return { fetches, fromFeeds, augmented };
}

interface ExtremesPlan {
  augmented: OnnxModel;
  /** Per tensor, the graph outputs holding its min, max and element count. */
  outputs: Map<string, { min: string; max: string; size: string }>;
}

/**
 * ReduceMin / ReduceMax (all axes, keepdims 0) and Size of each tensor as new graph outputs, as
 * onnxruntime's MinMax calibrator augments the graph: the session hands back three scalars per
 * tensor instead of the tensor. Tensors not known to be float32 (value_info, or the type rules
 * of graph/element-types.ts) are Cast to float32 first.
 */
function extremesPlan(model: OnnxModel, tensorNames: readonly string[]): ExtremesPlan {
  const { g, names, produced, initializers } = graphFacts(model, tensorNames);
  const types = elementTypes(model);
  const taken = new Set<string>([...produced, ...initializers, ...g.inputs.map((v) => v.name), ...g.nodes.map((n) => n.name)]);
  const fresh = (base: string) => uniqueIn(taken, base);
  const nodes: OnnxNode[] = [];
  const added: OnnxValueInfo[] = [];
  const outputs = new Map<string, { min: string; max: string; size: string }>();
  for (const name of names) {
    let source = name;
    if (types.get(name) !== DataType.float32) {
      source = fresh(`${name}_calib_float`);
      nodes.push(node('Cast', [name], [source], { name: source, attributes: [attrs.int('to', DataType.float32)] }));
    }
    const o = { min: fresh(`${name}_calib_min`), max: fresh(`${name}_calib_max`), size: fresh(`${name}_calib_size`) };
    const keep0 = [attrs.int('keepdims', 0)];
    nodes.push(
      node('ReduceMin', [source], [o.min], { name: o.min, attributes: keep0 }),
      node('ReduceMax', [source], [o.max], { name: o.max, attributes: keep0 }),
      node('Size', [name], [o.size], { name: o.size }),
    );
    added.push(untyped(o.min), untyped(o.max), untyped(o.size));
    outputs.set(name, o);
  }
  return { augmented: { ...model, graph: { ...g, nodes: [...g.nodes, ...nodes], outputs: [...g.outputs, ...added] } }, outputs };
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
 * One session for the augmented model, every sample run in order; `handle` sees each sample's
 * feeds and fetched values and is awaited before the next sample runs.
 */
async function runSamples(
  augmented: OnnxModel,
  fetches: string[],
  samples: CalibrationSamples,
  opts: CollectOptions,
  handle: (index: number, feeds: Record<string, Tensor>, got: InferenceSession.ReturnType) => void | Promise<void>,
): Promise<void> {
  let bytes: Uint8Array | undefined = encodeModelBytes(augmented);
  // The arena keeps one sample's activations allocated from sample to sample instead of
  // allocating them again on every run; it is freed with the session.
  const options: InferenceSession.SessionOptions = { ...baseOptions(opts.intraOpNumThreads ?? 1), graphOptimizationLevel: 'disabled', enableCpuMemArena: true };
  let session: InferenceSession | undefined;
  const placed = placeModel(bytes, opts);
  await withSession(placed.model, options, async (s) => {
    session = s;
    placed.done();
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
      for (const name of fetches) {
        if (!got[name]) throw new Errors.Onnx(`onnxruntime returned no value for '${name}' on calibration sample ${i}`);
      }
      await handle(i, feeds, got);
    }
  }).catch((err: unknown) => {
    placed.done();
    if (session === undefined) throw new Errors.Onnx(`onnxruntime cannot load the model for calibration: ${message(err)}`);
    throw err;
  });
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
  await runSamples(augmented, fetches, samples, opts, async (i, feeds, got) => {
    const values = new Map<string, IntermediateValue>();
    for (const name of fetches) {
      const t = got[name]!;
      values.set(name, { data: asFloat32(t), dims: t.dims });
    }
    for (const name of fromFeeds) {
      const t = feeds[name]!;
      values.set(name, { data: asFloat32(t), dims: t.dims });
    }
    await onSample(i, values);
  });
}

export interface Extremes {
  min: number;
  max: number;
  /** Elements of the tensor on this sample. */
  size: number;
}

/**
 * Each named tensor's min, max and element count on each sample, reduced inside onnxruntime
 * (ReduceMin/ReduceMax outputs, as onnxruntime's MinMax calibrator does), so no activation
 * crosses into JavaScript: the cheap path for minmax calibration. Same session, errors and
 * cancellation as runWithIntermediates. An empty tensor reports size 0 (its min and max are
 * whatever onnxruntime's reduction of nothing gives, and should be ignored); NaN is treated as
 * onnxruntime's ReduceMin/ReduceMax treat it.
 */
export async function runWithExtremes(
  model: OnnxModel,
  tensorNames: readonly string[],
  samples: CalibrationSamples,
  onSample: (index: number, extremes: ReadonlyMap<string, Extremes>) => void | Promise<void>,
  opts: CollectOptions = {},
): Promise<void> {
  stopIfCancelled(opts);
  const { augmented, outputs } = extremesPlan(model, tensorNames);
  const fetches = [...outputs.values()].flatMap((o) => [o.min, o.max, o.size]);
  await runSamples(augmented, fetches, samples, opts, async (i, _feeds, got) => {
    const values = new Map<string, Extremes>();
    for (const [name, o] of outputs) {
      const scalar = (n: string) => Number((got[n]!.data as ArrayLike<number | bigint>)[0] ?? NaN);
      values.set(name, { min: scalar(o.min), max: scalar(o.max), size: scalar(o.size) });
    }
    await onSample(i, values);
  });
}

export interface GramValue {
  /** The tensor's values as float32, as runWithIntermediates hands them. */
  value: IntermediateValue;
  /**
   * Σ xᵀx over this sample's rows (the tensor reshaped to [-1, K]), K×K float32 from onnxruntime's
   * MatMul; for a Conv's patches, group × patchK × patchK (Σ pᵀp per conv group).
   */
  gram: Float32Array;
}

/** A Conv whose input patches (nn.Unfold of its X) make the rows of the Gram matrix. */
export interface GramConv {
  /** The Conv node: its strides, pads, dilations and auto_pad are the unfold's. */
  node: OnnxNode;
  group: number;
  channelsPerGroup: number;
  kernel: readonly number[];
  patchK: number;
}

export interface GramRequest {
  /** The key the sample's values are handed back under (default: name). */
  key?: string | undefined;
  name: string;
  k: number;
  conv?: GramConv | undefined;
}

/**
 * GPTQ's nn.Unfold in the graph: a Conv by a one-hot kernel E [group·patchK, C/group, ...kernel]
 * (E[g·patchK + c·P + p, c, p] = 1, P = Π kernel) with the Conv's own geometry gives
 * [N, group·patchK, ...out], each output position one patch in nn.Unfold's (c, p) order; it is
 * regrouped to [group, rows, patchK] and multiplied by its transpose per group.
 */
function unfoldGram(source: string, conv: GramConv, fresh: (base: string) => string, nodes: OnnxNode[], inits: OnnxModel['graph']['initializers']): string {
  const { group, channelsPerGroup: cg, kernel, patchK } = conv;
  const p = kernel.reduce((a, b) => a * b, 1);
  const eye = new Float32Array(group * patchK * cg * p);
  for (let g = 0; g < group; g++) for (let c = 0; c < cg; c++) for (let q = 0; q < p; q++) eye[((g * patchK + c * p + q) * cg + c) * p + q] = 1;
  const e = fresh(`${source}_unfold_kernel`);
  inits.push(floatTensor(e, [group * patchK, cg, ...kernel], eye));
  const keep = new Set(['strides', 'pads', 'dilations', 'auto_pad']);
  const geometry = conv.node.attributes.filter((a) => keep.has(a.name));
  const patches = fresh(`${source}_unfold`);
  const shape4 = fresh(`${source}_unfold_shape4`);
  const split = fresh(`${source}_unfold_split`);
  const perm = fresh(`${source}_unfold_perm`);
  const shape3 = fresh(`${source}_unfold_shape3`);
  const rows = fresh(`${source}_unfold_rows`);
  const t = fresh(`${source}_unfold_t`);
  const gram = fresh(`${source}_unfold_gram`);
  inits.push(int64Tensor(shape4, [4], [0, group, patchK, -1]), int64Tensor(shape3, [3], [group, -1, patchK]));
  nodes.push(
    node('Conv', [source, e], [patches], { name: patches, attributes: [...geometry, attrs.int('group', group), attrs.ints('kernel_shape', kernel)] }),
    node('Reshape', [patches, shape4], [split], { name: split }),
    node('Transpose', [split], [perm], { name: perm, attributes: [attrs.ints('perm', [1, 0, 3, 2])] }),
    node('Reshape', [perm, shape3], [rows], { name: rows }),
    node('Transpose', [rows], [t], { name: t, attributes: [attrs.ints('perm', [0, 2, 1])] }),
    node('MatMul', [t, rows], [gram], { name: gram }),
  );
  return gram;
}

/**
 * runWithIntermediates for tensors whose last dim is K, plus each tensor's K×K Gram matrix
 * computed inside onnxruntime: Reshape(t, [-1, K]) → MatMul(Transpose(·), ·) as extra graph
 * outputs (Cast to float32 first where the type is not known to be float32); for a Conv input
 * (conv given) the Gram matrix of its unfolded patches instead (unfoldGram). onnxruntime's
 * GEMM is many times faster than a JavaScript loop over the rows; the sum over samples is
 * left to the caller (in float64).
 */
export async function runWithGrams(
  model: OnnxModel,
  tensors: readonly GramRequest[],
  samples: CalibrationSamples,
  onSample: (index: number, values: ReadonlyMap<string, GramValue>) => void | Promise<void>,
  opts: CollectOptions = {},
): Promise<void> {
  stopIfCancelled(opts);
  const { g, produced, initializers, outputs: graphOutputs } = graphFacts(
    model,
    tensors.map((t) => t.name),
  );
  const types = elementTypes(model);
  const taken = new Set<string>([...produced, ...initializers, ...g.inputs.map((v) => v.name), ...g.nodes.map((n) => n.name)]);
  const fresh = (base: string) => uniqueIn(taken, base);
  const nodes: OnnxNode[] = [];
  const added: OnnxValueInfo[] = [];
  const shapes: OnnxModel['graph']['initializers'] = [];
  const plan = new Map<string, { name: string; value: string; gram: string }>();
  const floats = new Map<string, string>();
  const asFloat = (name: string) => {
    if (types.get(name) === DataType.float32) return name;
    let f = floats.get(name);
    if (!f) {
      f = fresh(`${name}_gram_float`);
      floats.set(name, f);
      nodes.push(node('Cast', [name], [f], { name: f, attributes: [attrs.int('to', DataType.float32)] }));
    }
    return f;
  };
  const exposed = new Set<string>();
  for (const { key: given, name, k, conv } of tensors) {
    const key = given ?? name;
    if (plan.has(key)) continue;
    const source = asFloat(name);
    let gram: string;
    if (conv) gram = unfoldGram(source, conv, fresh, nodes, shapes);
    else {
      const shape = fresh(`${name}_gram_shape`);
      shapes.push(int64Tensor(shape, [2], [-1, k]));
      const rows = fresh(`${name}_gram_rows`);
      const t = fresh(`${name}_gram_t`);
      gram = fresh(`${name}_gram`);
      nodes.push(
        node('Reshape', [source, shape], [rows], { name: rows }),
        node('Transpose', [rows], [t], { name: t, attributes: [attrs.ints('perm', [1, 0])] }),
        node('MatMul', [t, rows], [gram], { name: gram }),
      );
    }
    added.push(untyped(gram));
    // The tensor itself comes out too (per-channel sums); a graph input comes from the feeds.
    const isInput = g.inputs.some((v) => v.name === name) && !initializers.has(name);
    if (!isInput && !graphOutputs.has(name) && !exposed.has(name)) {
      added.push(untyped(name));
      exposed.add(name);
    }
    plan.set(key, { name, value: isInput ? '' : name, gram });
  }
  const augmented: OnnxModel = { ...model, graph: { ...g, nodes: [...g.nodes, ...nodes], initializers: [...g.initializers, ...shapes], outputs: [...g.outputs, ...added] } };
  const fetches = [...new Set([...plan.values()].flatMap((p) => (p.value ? [p.value, p.gram] : [p.gram])))];
  await runSamples(augmented, fetches, samples, opts, async (i, feeds, got) => {
    const values = new Map<string, GramValue>();
    for (const [key, p] of plan) {
      const t = p.value ? got[p.value]! : feeds[p.name]!;
      values.set(key, { value: { data: asFloat32(t), dims: t.dims }, gram: asFloat32(got[p.gram]!) });
    }
    await onSample(i, values);
  });
}

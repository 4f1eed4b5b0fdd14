import type { Tensor } from 'onnxruntime-node';
import { parseNpyArrayHeader, readNpyArray, type NpyArrayHeader } from '../../codecs/npy.js';
import { decodeNpz, npzEntrySizes } from '../../codecs/npz.js';
import { Errors } from '../../errors.js';
import { dataTypeName, type OnnxModel } from '../proto/model.js';
import { tensorType, type Dim } from '../proto/value-type.js';
import { ortSync } from '../runtime/ort.js';
import { gaussian, typed, VALIDATION_SEED } from '../runtime/inputs.js';

// The samples a model is calibrated on: the user's .npz, or N(0, 1) data when the user opts
// into it. Samples are handed out one at a time (feeds(i)), so whoever runs them holds one
// sample's tensors at a time on top of the arrays themselves.
//
// Layout of the .npz: one array per (non-initializer) graph input, named like it (`x` or
// `x.npy`), with a leading sample axis N shared by every array. Sample i of an array A is
//  - A[i], when A has one axis more than the input (A is [N, ...input shape]: each sample
//    is a whole batch, e.g. [N, 1, 3, 224, 224] for an input [1, 3, 224, 224]);
//  - A[i:i+1], when A has the input's rank and the input's first dim is symbolic or 1 (A is
//    [N, ...input shape without its batch dim]: each sample is a batch of one, e.g.
//    [N, 3, 224, 224] for an input ['batch', 3, 224, 224]);
//  - A[i], when the model declares no shape for the input.
// Every static dim of the input must match; symbolic dims take the array's. The dtype must be
// the input's element type exactly (no silent float64 → float32 conversion).

export interface CalibrationSamples {
  readonly count: number;
  readonly inputNames: readonly string[];
  /** The feeds of sample `index` (0 ≤ index < count), made on each call. */
  feeds(index: number): Record<string, Tensor>;
  /** Where the data came from: the report warns when ranges come from random data. */
  readonly source: 'user' | 'random';
  /** Each input's dtype and the dims one sample feeds it. */
  readonly inputs: readonly CalibrationInput[];
  /**
   * What the samples are made from, so another process (the onnxruntime host) can make the
   * same feeds: sample i is sample `first + i` of the arrays (one per input, in `inputs`
   * order) or of the seeded N(0, 1) data. Absent on samples made some other way.
   */
  readonly origin?: SampleOrigin | undefined;
}

export interface SampleOrigin {
  first: number;
  data: { kind: 'random'; seed: number } | { kind: 'arrays'; arrays: readonly ArrayBufferView[] };
}

export interface CalibrationInput {
  name: string;
  dtype: string;
  dims: readonly number[];
}

export interface CalibrationLimits {
  /** CALIBRATION_MAX_BYTES: the arrays' uncompressed bytes together. */
  maxBytes: number;
  /** CALIBRATION_MAX_SAMPLES. */
  maxSamples: number;
}

/** The arrays onnxruntime-node takes for each element type, by the type's onnxruntime name. */
const ARRAYS = {
  float32: Float32Array,
  float64: Float64Array,
  float16: Uint16Array,
  int8: Int8Array,
  int16: Int16Array,
  int32: Int32Array,
  int64: BigInt64Array,
  uint8: Uint8Array,
  uint16: Uint16Array,
  uint32: Uint32Array,
  uint64: BigUint64Array,
  bool: Uint8Array,
} as const;
type ArrayType = keyof typeof ARRAYS;
type AnyArray = InstanceType<(typeof ARRAYS)[ArrayType]>;

/** Dims deeper than any model input has; the real bound is the model's own rank. */
const MAX_ARRAY_DIMS = 64;

interface ModelInput {
  name: string;
  /** onnxruntime's name of the element type, or undefined when the model declares none. */
  dtype: string | undefined;
  shape: Dim[] | undefined;
}

/** The graph inputs a caller must feed: those without an initializer (a default value). */
export function feedInputs(model: OnnxModel): ModelInput[] {
  const initializers = new Set(model.graph.initializers.map((t) => t.name));
  return model.graph.inputs
    .filter((v) => !initializers.has(v.name))
    .map((v) => {
      const t = tensorType(v);
      return { name: v.name, dtype: t && t.elemType !== 0 ? dataTypeName(t.elemType) : undefined, shape: t?.shape };
    });
}

function fail(message: string): never {
  throw new Errors.Calibration(`calibration: ${message}`);
}

function showShape(shape: readonly (Dim | number)[]): string {
  return `[${shape.map((d) => (d === undefined ? '?' : typeof d === 'string' ? `'${d}'` : String(d))).join(', ')}]`;
}

/** The dims one sample of `array` feeds `input`, by the rules above (or a 400). */
function sampleDims(name: string, array: readonly number[], input: ModelInput): number[] {
  const shape = input.shape;
  if (shape === undefined) return array.slice(1);
  const rank = shape.length;
  let dims: number[];
  if (array.length === rank + 1) dims = array.slice(1);
  else if (array.length === rank && rank > 0 && (typeof shape[0] !== 'number' || shape[0] === 1)) {
    dims = [1, ...array.slice(1)];
  } else {
    fail(
      `array '${name}' has shape ${showShape(array)}, which does not fit input '${input.name}' of shape ${showShape(shape)}: ` +
        `give [N, ${shape.map((d) => (typeof d === 'number' ? String(d) : '…')).join(', ')}] (N samples, each one batch)` +
        (rank > 0 && (typeof shape[0] !== 'number' || shape[0] === 1) ? ' or [N, ...the shape without its first dim] (each sample a batch of one)' : ''),
    );
  }
  shape.forEach((d, k) => {
    if (typeof d === 'number' && d !== dims[k]) {
      fail(`array '${name}' gives input '${input.name}' samples of shape ${showShape(dims)}, but the input's dim ${k} is ${d} (input shape ${showShape(shape)})`);
    }
  });
  return dims;
}

function checkFinite(name: string, dtype: ArrayType, data: AnyArray): void {
  let bad = -1;
  if (dtype === 'float32' || dtype === 'float64') {
    const f = data as Float32Array | Float64Array;
    for (let i = 0; i < f.length; i++) {
      if (!Number.isFinite(f[i]!)) {
        bad = i;
        break;
      }
    }
  } else if (dtype === 'float16') {
    const h = data as Uint16Array;
    for (let i = 0; i < h.length; i++) {
      if ((h[i]! & 0x7c00) === 0x7c00) {
        bad = i;
        break;
      }
    }
  }
  if (bad >= 0) fail(`array '${name}' holds NaN or ±Infinity at flat index ${bad}`);
}

interface Column {
  input: string;
  dtype: ArrayType;
  data: AnyArray;
  dims: number[];
  perSample: number;
}

function samplesOf(columns: Column[], count: number, source: 'user' | 'random', origin: SampleOrigin, make: (index: number) => Record<string, Tensor>): CalibrationSamples {
  return {
    count,
    source,
    origin,
    inputNames: columns.map((c) => c.input),
    inputs: columns.map((c) => ({ name: c.input, dtype: c.dtype, dims: c.dims })),
    feeds(index: number) {
      if (!Number.isInteger(index) || index < 0 || index >= count) throw new RangeError(`sample ${index} of ${count}`);
      return make(index);
    },
  };
}

export function calibrationSamplesFromNpz(npz: Uint8Array, model: OnnxModel, limits: CalibrationLimits): CalibrationSamples {
  const inputs = feedInputs(model);
  const byName = new Map(inputs.map((i) => [i.name, i]));
  const declared = npzEntrySizes(npz).reduce((s, e) => s + e.size, 0);
  if (declared > limits.maxBytes) {
    throw new Errors.CalibrationTooLarge(`calibration: the .npz's arrays take ${declared} bytes uncompressed; the limit is CALIBRATION_MAX_BYTES=${limits.maxBytes}`);
  }
  const entries = decodeNpz(npz, limits.maxBytes);
  const npyLimits = { maxElements: limits.maxBytes, maxDims: MAX_ARRAY_DIMS };

  // Everything is checked on the headers before any array is copied.
  const planned: { entry: Uint8Array; header: NpyArrayHeader; input: ModelInput; dims: number[] }[] = [];
  let count: number | undefined;
  let first = '';
  for (const e of entries) {
    const name = e.name.endsWith('.npy') ? e.name.slice(0, -4) : e.name;
    const input = byName.get(name);
    if (!input) {
      const known = inputs.map((i) => `'${i.name}'`).join(', ');
      fail(`the .npz holds an array '${name}', but the model has no input of that name to feed (its inputs: ${known || 'none'})`);
    }
    if (planned.some((p) => p.input === input)) fail(`the .npz holds two arrays for input '${name}'`);
    let header: NpyArrayHeader;
    try {
      header = parseNpyArrayHeader(e.data, npyLimits);
    } catch (err) {
      throw new Errors.Calibration(`calibration: array '${name}': ${(err as Error).message}`);
    }
    if (input.dtype !== undefined && header.dtype !== input.dtype) {
      fail(`array '${name}' is ${header.dtype}, but input '${name}' takes ${input.dtype} (convert it, e.g. with .astype(np.${input.dtype === 'bool' ? 'bool_' : input.dtype}))`);
    }
    if (!(header.dtype in ARRAYS)) fail(`array '${name}' is ${header.dtype}, which onnxruntime does not take`);
    if (header.shape.length === 0) fail(`array '${name}' is a scalar: it needs a leading sample axis N`);
    const n = header.shape[0]!;
    if (n === 0) fail(`array '${name}' holds no samples (N = 0, shape ${showShape(header.shape)})`);
    if (n > limits.maxSamples) {
      throw new Errors.CalibrationTooLarge(`calibration: array '${name}' holds ${n} samples; the limit is CALIBRATION_MAX_SAMPLES=${limits.maxSamples}`);
    }
    if (count === undefined) {
      count = n;
      first = name;
    } else if (n !== count) {
      fail(`array '${name}' holds ${n} samples but array '${first}' holds ${count}: every array needs the same N`);
    }
    planned.push({ entry: e.data, header, input, dims: sampleDims(name, header.shape, input) });
  }
  const missing = inputs.filter((i) => !planned.some((p) => p.input === i));
  if (missing.length) {
    fail(`the .npz has no array for input${missing.length > 1 ? 's' : ''} ${missing.map((i) => `'${i.name}' (${i.dtype ?? 'any type'}, ${i.shape ? showShape(i.shape) : 'any shape'})`).join(', ')}; name each array like the input it feeds`);
  }
  if (count === undefined) fail('the .npz holds no arrays and the model has no inputs to feed');

  const columns: Column[] = planned.map(({ entry, header, input, dims }) => {
    const { bytes } = readNpyArray(entry, npyLimits, header);
    const dtype = header.dtype as ArrayType;
    const Ctor = ARRAYS[dtype];
    const data = new Ctor(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength / Ctor.BYTES_PER_ELEMENT) as AnyArray;
    checkFinite(input.name, dtype, data);
    return { input: input.name, dtype, data, dims, perSample: dims.reduce((a, b) => a * b, 1) };
  });
  const { Tensor: TensorCtor } = ortSync();
  return samplesOf(columns, count, 'user', { first: 0, data: { kind: 'arrays', arrays: columns.map((c) => c.data) } }, (index) => {
    const feeds: Record<string, Tensor> = {};
    for (const c of columns) {
      const view = c.data.subarray(index * c.perSample, (index + 1) * c.perSample);
      feeds[c.input] = new TensorCtor(c.dtype, view as Float32Array, c.dims);
    }
    return feeds;
  });
}

/**
 * count samples of N(0, 1) float inputs (integer and boolean inputs zero, as validation's
 * inputs are), made on demand from the seed: nothing is held between calls. Symbolic dims take
 * `dims[name]`, or 1.
 */
export function randomCalibrationSamples(model: OnnxModel, count: number, dims: Record<string, number>, seed = VALIDATION_SEED): CalibrationSamples {
  if (!Number.isInteger(count) || count < 1) fail(`random calibration needs at least one sample, got ${count}`);
  const described: CalibrationInput[] = feedInputs(model).map((input) => {
    if (input.dtype === undefined || !(input.dtype in ARRAYS)) {
      fail(`input '${input.name}' has element type ${input.dtype ?? '(none declared)'}, for which random calibration data is not generated`);
    }
    if (input.shape === undefined) fail(`input '${input.name}' declares no shape, so random calibration data cannot be shaped for it; send an .npz`);
    const d = input.shape.map((x) => (typeof x === 'number' ? x : x === undefined ? 1 : (dims[x] ?? 1)));
    if (d.some((x) => !Number.isSafeInteger(x) || x < 0)) fail(`input '${input.name}': dims ${showShape(d)} are not valid`);
    return { name: input.name, dtype: input.dtype, dims: d };
  });
  return randomSamplesOf(described, count, seed);
}

/** count seeded N(0, 1) samples for these inputs: randomCalibrationSamples once the inputs are known (the onnxruntime host makes the same ones). */
export function randomSamplesOf(inputs: readonly CalibrationInput[], count: number, seed = VALIDATION_SEED): CalibrationSamples {
  const columns: Column[] = inputs.map((i) => ({ input: i.name, dtype: i.dtype as ArrayType, data: new Float32Array(0), dims: [...i.dims], perSample: i.dims.reduce((a, b) => a * b, 1) }));
  const { Tensor: TensorCtor } = ortSync();
  return samplesOf(columns, count, 'random', { first: 0, data: { kind: 'random', seed } }, (index) => {
    const feeds: Record<string, Tensor> = {};
    columns.forEach((c, k) => {
      const isFloat = c.dtype === 'float32' || c.dtype === 'float64' || c.dtype === 'float16';
      const values = isFloat ? gaussian(c.perSample, seed + index * columns.length + k) : new Float32Array(c.perSample);
      const t = typed(TensorCtor, c.dtype, values, c.dims);
      if (!t) fail(`input '${c.input}' has element type ${c.dtype}, for which random calibration data is not generated`);
      feeds[c.input] = t;
    });
    return feeds;
  });
}

/**
 * Samples whose arrays are read one sample at a time: `read(k, index)` returns the bytes input
 * k (in `inputs` order) takes on sample `index`, as the arrays of an .npz held them (the
 * onnxruntime host reads them from the file the worker staged).
 */
export function samplesFromReader(inputs: readonly CalibrationInput[], count: number, source: 'user' | 'random', read: (k: number, index: number) => ArrayBuffer): CalibrationSamples {
  const columns: Column[] = inputs.map((i) => {
    if (!(i.dtype in ARRAYS)) fail(`input '${i.name}' has element type ${i.dtype}, which onnxruntime does not take`);
    return { input: i.name, dtype: i.dtype as ArrayType, data: new Float32Array(0), dims: [...i.dims], perSample: i.dims.reduce((a, b) => a * b, 1) };
  });
  const { Tensor: TensorCtor } = ortSync();
  return samplesOf(columns, count, source, { first: 0, data: { kind: 'arrays', arrays: [] } }, (index) => {
    const feeds: Record<string, Tensor> = {};
    columns.forEach((c, k) => {
      const data = new ARRAYS[c.dtype](read(k, index)) as AnyArray;
      feeds[c.input] = new TensorCtor(c.dtype, data as Float32Array, c.dims);
    });
    return feeds;
  });
}

/** Samples from .. from + count − 1 of `s`, as samples 0 .. count − 1. */
export function sliceSamples(s: CalibrationSamples, from: number, count: number): CalibrationSamples {
  return {
    count,
    source: s.source,
    inputNames: s.inputNames,
    inputs: s.inputs,
    origin: s.origin && { ...s.origin, first: s.origin.first + from },
    feeds(index: number) {
      if (!Number.isInteger(index) || index < 0 || index >= count) throw new RangeError(`sample ${index} of ${count}`);
      return s.feeds(from + index);
    },
  };
}

/** The first count − heldBack samples to calibrate on, and the last heldBack to measure on. */
export function splitSamples(s: CalibrationSamples, heldBack: number): { calibrate: CalibrationSamples; heldBack: CalibrationSamples } {
  if (!Number.isInteger(heldBack) || heldBack < 0 || heldBack >= s.count) {
    fail(`cannot hold back ${heldBack} of ${s.count} samples: at least one must be left to calibrate on`);
  }
  return { calibrate: sliceSamples(s, 0, s.count - heldBack), heldBack: sliceSamples(s, s.count - heldBack, heldBack) };
}

import { mulberry32 } from '../../core/random.js';
import type { InferenceSession, Tensor as OrtTensor } from 'onnxruntime-node';
import { Errors } from '../../errors.js';

export type TensorCtor = typeof import('onnxruntime-node').Tensor;

// The inputs both models run on: the caller's arrays where given, else float inputs drawn
// from N(0, 1) with a fixed seed, integer and boolean inputs zero; symbolic dimensions take
// the caller's `dims` values, else 1.

export const VALIDATION_SEED = 20240611;

export interface InputDescription {
  name: string;
  dtype: string;
  shape: number[];
  source: 'random' | 'zeros' | 'user';
}

export interface UserArray {
  data: Float32Array | Float64Array;
  shape: number[];
  /** The .npy element type (float32, int64, bool, ...). */
  dtype: string;
}

/** Uniform in (0, 1): never 0, so log() stays finite. */
function uniform(seed: number): () => number {
  const next = mulberry32(seed);
  return () => (next() + 0.5) / 4294967296;
}

export function gaussian(n: number, seed: number): Float32Array {
  const u = uniform(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(u()));
    const t = 2 * Math.PI * u();
    out[i] = r * Math.cos(t);
    if (i + 1 < n) out[i + 1] = r * Math.sin(t);
  }
  return out;
}

function floatToHalf(v: number): number {
  const f = new Float32Array([v]);
  const x = new Uint32Array(f.buffer)[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = ((x >>> 23) & 0xff) - 127 + 15;
  const mant = x & 0x7fffff;
  if (exp <= 0) return sign;
  if (exp >= 31) return sign | 0x7c00;
  return sign | (exp << 10) | (mant >>> 13);
}

const INT_RANGES: Record<string, [number, number]> = {
  int8: [-128, 127],
  uint8: [0, 255],
  int16: [-32768, 32767],
  uint16: [0, 65535],
  int32: [-(2 ** 31), 2 ** 31 - 1],
  uint32: [0, 2 ** 32 - 1],
  int64: [-Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  uint64: [0, Number.MAX_SAFE_INTEGER],
  bool: [0, 1],
};

/** A user array must hold values the integer or boolean input can take, exactly. */
function checkIntegral(name: string, dtype: string, values: ArrayLike<number>): void {
  const range = INT_RANGES[dtype];
  if (!range) return;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isInteger(v) || v < range[0] || v > range[1]) {
      throw new Errors.Option(`inputs: '${name}' holds ${v} at flat index ${i}, which input '${name}' (${dtype}) cannot take: it needs integers in [${range[0]}, ${range[1]}]`);
    }
  }
}

/** Values as an onnxruntime tensor of the input's element type. */
export function typed(Tensor: TensorCtor, dtype: string, values: ArrayLike<number>, dims: number[]): OrtTensor | undefined {
  switch (dtype) {
    case 'float32':
      return new Tensor('float32', values instanceof Float32Array ? values : Float32Array.from(values), dims);
    case 'float64':
      return new Tensor('float64', Float64Array.from(values), dims);
    case 'float16':
      return new Tensor('float16', Uint16Array.from(values, floatToHalf), dims);
    case 'int64':
      return new Tensor('int64', BigInt64Array.from(values, (v) => BigInt(Math.round(v))), dims);
    case 'uint64':
      return new Tensor('uint64', BigUint64Array.from(values, (v) => BigInt(Math.round(v))), dims);
    case 'int32':
      return new Tensor('int32', Int32Array.from(values, Math.round), dims);
    case 'uint32':
      return new Tensor('uint32', Uint32Array.from(values, Math.round), dims);
    case 'int16':
      return new Tensor('int16', Int16Array.from(values, Math.round), dims);
    case 'uint16':
      return new Tensor('uint16', Uint16Array.from(values, Math.round), dims);
    case 'int8':
      return new Tensor('int8', Int8Array.from(values, Math.round), dims);
    case 'uint8':
      return new Tensor('uint8', Uint8Array.from(values, Math.round), dims);
    case 'bool':
      return new Tensor('bool', Uint8Array.from(values, (v) => (v ? 1 : 0)), dims);
    default:
      return undefined;
  }
}

export type Feeds = Record<string, OrtTensor>;

export interface FeedOptions {
  /** Values for symbolic dimensions by name (`dims=sequence:512`); the others are 1. */
  dims?: Readonly<Record<string, number>> | undefined;
  /** Most elements one generated input may have (MAX_ELEMENTS). */
  maxElements: number;
}

export interface MadeFeeds {
  feeds: Feeds;
  inputs: InputDescription[];
  /** Every symbolic dimension of the generated inputs and the value it took. */
  dims: Record<string, number>;
  /** Symbolic dimensions nobody gave a value, set to 1. */
  defaulted: string[];
}

/** A generated input's dimensions: fixed ones as declared, symbolic ones from `dims` or 1. */
function dimsOf(shape: readonly (number | string)[], o: FeedOptions, used: Record<string, number>, defaulted: Set<string>): number[] {
  return shape.map((d) => {
    if (typeof d === 'number' && d >= 0) return d;
    const name = typeof d === 'string' && d !== '' ? d : undefined;
    const given = name !== undefined && o.dims && Object.hasOwn(o.dims, name) ? o.dims[name] : undefined;
    if (name !== undefined) used[name] = given ?? 1;
    if (name !== undefined && given === undefined) defaulted.add(name);
    return given ?? 1;
  });
}

/** Feeds for a session's inputs, or a reason (and what to send instead) when the model cannot be fed. */
export function makeFeeds(
  Tensor: TensorCtor,
  metadata: readonly InferenceSession.ValueMetadata[],
  user: Map<string, UserArray> | undefined,
  o: FeedOptions,
): MadeFeeds | { reason: string; send: string } {
  const feeds: Feeds = {};
  const inputs: InputDescription[] = [];
  const used: Record<string, number> = {};
  const defaulted = new Set<string>();
  const symbolic = new Set<string>();
  let stream = 0;
  for (const m of metadata) {
    if (!m.isTensor) return { reason: `input '${m.name}' is not a tensor (sequences and maps are not generated)`, send: `an inputs .npz cannot carry it either: validate=false` };
    for (const d of m.shape) if (typeof d === 'string' && d !== '') symbolic.add(d);
    const given = user?.get(m.name);
    const dims = given ? given.shape : dimsOf(m.shape, o, used, defaulted);
    const n = dims.reduce((a, b) => a * b, 1);
    if (!given && n > o.maxElements) {
      throw new Errors.TooManyElements(`dims: input '${m.name}' would have shape [${dims.join(', ')}], ${n} elements; the limit is MAX_ELEMENTS=${o.maxElements}`);
    }
    const isFloat = m.type === 'float32' || m.type === 'float64' || m.type === 'float16';
    const source = given ? 'user' : isFloat ? 'random' : 'zeros';
    if (given) checkIntegral(m.name, m.type, given.data);
    const values = given ? given.data : isFloat ? gaussian(n, VALIDATION_SEED + stream++) : new Float32Array(n);
    const t = typed(Tensor, m.type, values, dims);
    if (!t) return { reason: `input '${m.name}' has element type ${m.type}, which validation does not generate`, send: `validate=false (onnxruntime-node cannot take ${m.type} inputs)` };
    feeds[m.name] = t;
    inputs.push({ name: m.name, dtype: m.type, shape: dims, source });
  }
  const unknown = Object.keys(o.dims ?? {}).filter((d) => !symbolic.has(d));
  if (unknown.length) {
    const names = [...symbolic];
    throw new Errors.Option(
      `dims: ${unknown.map((d) => `'${d}'`).join(', ')} ${unknown.length === 1 ? 'is' : 'are'} not a symbolic dimension of the model's inputs ` +
        `(${names.length ? `its symbolic dimensions: ${names.join(', ')}` : 'it has none'})`,
    );
  }
  return { feeds, inputs, dims: used, defaulted: [...defaulted] };
}

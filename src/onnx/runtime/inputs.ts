import { mulberry32 } from '../../core/random.js';
import type { InferenceSession, Tensor as OrtTensor } from 'onnxruntime-node';

export type TensorCtor = typeof import('onnxruntime-node').Tensor;

// The inputs both models run on: the caller's arrays where given, else float inputs drawn
// from N(0, 1) with a fixed seed, integer and boolean inputs zero, symbolic dims 1.

export const VALIDATION_SEED = 20240611;

export interface InputDescription {
  name: string;
  dtype: string;
  shape: number[];
  source: 'random' | 'zeros' | 'user';
}

export interface UserArray {
  data: Float32Array;
  shape: number[];
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

/** A float32 array as an onnxruntime tensor of the input's element type. */
export function typed(Tensor: TensorCtor, dtype: string, values: Float32Array, dims: number[]): OrtTensor | undefined {
  switch (dtype) {
    case 'float32':
      return new Tensor('float32', values, dims);
    case 'float64':
      return new Tensor('float64', Float64Array.from(values), dims);
    case 'float16':
      return new Tensor('float16', Uint16Array.from(values, floatToHalf), dims);
    case 'int64':
      return new Tensor('int64', BigInt64Array.from(values, (v) => BigInt(Math.round(v))), dims);
    case 'int32':
      return new Tensor('int32', Int32Array.from(values, Math.round), dims);
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

/** Feeds for a session's inputs, or a string saying why the model cannot be fed. */
export function makeFeeds(
  Tensor: TensorCtor,
  metadata: readonly InferenceSession.ValueMetadata[],
  user: Map<string, UserArray> | undefined,
): { feeds: Feeds; inputs: InputDescription[] } | string {
  const feeds: Feeds = {};
  const inputs: InputDescription[] = [];
  let stream = 0;
  for (const m of metadata) {
    if (!m.isTensor) return `input '${m.name}' is not a tensor (sequences and maps are not generated)`;
    const given = user?.get(m.name);
    const dims = given ? given.shape : m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : 1));
    const n = dims.reduce((a, b) => a * b, 1);
    const isFloat = m.type === 'float32' || m.type === 'float64' || m.type === 'float16';
    const source = given ? 'user' : isFloat ? 'random' : 'zeros';
    const values = given ? given.data : isFloat ? gaussian(n, VALIDATION_SEED + stream++) : new Float32Array(n);
    const t = typed(Tensor, m.type, values, dims);
    if (!t) return `input '${m.name}' has element type ${m.type}, which validation does not generate`;
    feeds[m.name] = t;
    inputs.push({ name: m.name, dtype: m.type, shape: dims, source });
  }
  return { feeds, inputs };
}

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { decodeNpz } from '../../src/codecs/npz.js';

// Reading the generated model fixtures (test/fixtures/models/): the manifests written by the
// Python generators and the .npz files beside them. The arrays are any numpy dtype the
// fixtures use (float16/32/64, int32/64, uint8, bool), so this reads .npy itself instead of
// going through src/codecs/npy.ts, which decodes float weights only.

export const MODELS_DIR = join(process.cwd(), 'test', 'fixtures', 'models');
export const CORPUS_DIR = join(MODELS_DIR, 'corpus');
export const TRAINED_DIR = join(MODELS_DIR, 'trained');

export interface CorpusInput {
  name: string;
  dtype: string;
  shape: (number | string)[];
  run_shape: number[];
}

export interface CorpusWeight {
  name: string;
  kind: 'initializer' | 'constant';
  graph: string;
  dims: number[];
  dtype: string;
}

export interface CorpusEntry {
  name: string;
  file: string;
  io: string;
  bytes: number;
  source: string;
  opset: number;
  ir_version: number;
  float_type: 'float32' | 'float16';
  tags: string[];
  inputs: CorpusInput[];
  dims: Record<string, number>;
  outputs: string[];
  four_bit: { applies: boolean; why: string };
  op_types: string[];
  weights: { count: number; bytes: number; tensors: CorpusWeight[] };
  note?: string;
  /** What onnxruntime-node does with the model when that is not simply "runs". */
  ort?: { crashes: boolean; note: string; safe_options: { graphOptimizationLevel: 'disabled' | 'basic' | 'extended' | 'all' } };
}

export interface CorpusManifest {
  min_elements: number;
  models: CorpusEntry[];
  export_failures: { model: string; opset: number | null; error: string; retry?: string }[];
}

export function loadCorpusManifest(dir = CORPUS_DIR): CorpusManifest {
  return JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as CorpusManifest;
}

export interface NpyArray {
  dtype: string;
  shape: number[];
  data: Float32Array | Float64Array | Uint16Array | Int32Array | BigInt64Array | Uint8Array | Int8Array;
}

const DESCR: Record<string, { dtype: string; bytes: number; make: (b: ArrayBuffer) => NpyArray['data'] }> = {
  '<f4': { dtype: 'float32', bytes: 4, make: (b) => new Float32Array(b) },
  '<f8': { dtype: 'float64', bytes: 8, make: (b) => new Float64Array(b) },
  '<f2': { dtype: 'float16', bytes: 2, make: (b) => new Uint16Array(b) },
  '<i4': { dtype: 'int32', bytes: 4, make: (b) => new Int32Array(b) },
  '<i8': { dtype: 'int64', bytes: 8, make: (b) => new BigInt64Array(b) },
  '|u1': { dtype: 'uint8', bytes: 1, make: (b) => new Uint8Array(b) },
  '|i1': { dtype: 'int8', bytes: 1, make: (b) => new Int8Array(b) },
  '|b1': { dtype: 'bool', bytes: 1, make: (b) => new Uint8Array(b) },
};

/** A C-order little-endian .npy (what the fixture generators write). */
export function parseNpy(buf: Uint8Array): NpyArray {
  const major = buf[6];
  const headerLen = major === 1 ? buf[8] | (buf[9] << 8) : new DataView(buf.buffer, buf.byteOffset).getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = Buffer.from(buf.subarray(start, start + headerLen)).toString('latin1');
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*True/.test(header);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? '';
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s.length > 0).map(Number);
  const kind = descr === undefined ? undefined : DESCR[descr];
  if (kind === undefined || fortran) throw new Error(`unsupported npy array: descr ${descr}, fortran_order ${fortran}`);
  const count = shape.reduce((a, b) => a * b, 1);
  const offset = start + headerLen;
  const copy = new ArrayBuffer(count * kind.bytes);
  new Uint8Array(copy).set(buf.subarray(offset, offset + count * kind.bytes));
  return { dtype: kind.dtype, shape, data: kind.make(copy) };
}

/** Every array of an .npz, by name without the .npy suffix. */
export function readNpzArrays(path: string): Map<string, NpyArray> {
  const out = new Map<string, NpyArray>();
  for (const e of decodeNpz(new Uint8Array(readFileSync(path)), 2 ** 31)) out.set(e.name.replace(/\.npy$/, ''), parseNpy(e.data));
  return out;
}

export function toOrtTensor(a: NpyArray): ort.Tensor {
  if (a.dtype === 'bool') return new ort.Tensor('bool', a.data as Uint8Array, a.shape);
  return new ort.Tensor(a.dtype as 'float32', a.data as Float32Array, a.shape);
}

/** float16 bits to number (for comparing fp16 outputs). */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

export function asFloat64(data: NpyArray['data'] | ort.Tensor['data'], dtype: string): Float64Array {
  const out = new Float64Array(data.length);
  if (dtype === 'float16') for (let i = 0; i < data.length; i++) out[i] = halfToFloat(Number(data[i]));
  else for (let i = 0; i < data.length; i++) out[i] = Number(data[i]);
  return out;
}

/** The fixed input and the source's float output recorded for a corpus model. */
export function corpusIo(entry: CorpusEntry, dir = CORPUS_DIR): { feeds: Record<string, ort.Tensor>; expected: Map<string, NpyArray> } {
  const arrays = readNpzArrays(join(dir, entry.io));
  const feeds: Record<string, ort.Tensor> = {};
  const expected = new Map<string, NpyArray>();
  for (const [k, v] of arrays) {
    if (k.startsWith('input.')) feeds[k.slice(6)] = toOrtTensor(v);
    else if (k.startsWith('output.')) expected.set(k.slice(7), v);
  }
  return { feeds, expected };
}

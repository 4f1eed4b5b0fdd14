import type { InferenceSession, Tensor } from 'onnxruntime-node';
import { Errors } from '../../errors.js';
import { checkpoint, type CancelFlag } from '../../pool/cancel.js';
import { encodeModelBytes } from '../proto/encode.js';
import type { OnnxModel } from '../proto/model.js';
import { exposeTensors } from './intermediates.js';
import { loadOrt } from './ort.js';
import { placeModel } from './session-model.js';

// How far the quantized model moved from the float one on held-back samples, sample by
// sample (only one sample's activations are alive at once):
// - per activation tensor, in the quantized model run unfused (Q → DQ as written: what the
//   8-bit integers represent), against the same tensor of the float model;
// - per graph output, in the quantized model as onnxruntime optimizes it by default (the
//   fused integer kernels users deploy), against the float outputs.

export interface SampleFeeds {
  count: number;
  feeds(i: number): Record<string, Tensor>;
}

export interface TensorError {
  name: string;
  snr_db: number | null;
  cosine_similarity: number;
}

export interface OutputError {
  name: string;
  /** Mean over samples of each sample's cosine similarity. */
  cosine_similarity: number;
  min_cosine_similarity: number;
  /** 10 log10(Σ ref² / Σ (ref − q)²) over all held-back samples. */
  snr_db: number | null;
  /** Share of rows whose argmax agrees, for [batch, classes] outputs (null for others). */
  top1_agreement: number | null;
}

export interface ActivationErrors {
  samples: number;
  tensors: Map<string, TensorError>;
  outputs: OutputError[];
}

export interface MeasureOptions {
  threads?: number | undefined;
  signal?: AbortSignal | undefined;
  /** The pool's cancellation flag, checked between samples. */
  cancel?: CancelFlag | undefined;
  externalData?: { path: string; data: Uint8Array }[] | undefined;
  /** In the onnxruntime host: the directory of the staged model's external data (session-model.ts). */
  besideDir?: string | undefined;
}

export class Sums {
  ref2 = 0;
  err2 = 0;
  dot = 0;
  q2 = 0;
  add(a: ArrayLike<number>, b: ArrayLike<number>): void {
    let r = 0;
    let e = 0;
    let d = 0;
    let q = 0;
    for (let i = 0; i < a.length; i++) {
      const x = a[i]!;
      const y = b[i]!;
      r += x * x;
      e += (x - y) * (x - y);
      d += x * y;
      q += y * y;
    }
    this.ref2 += r;
    this.err2 += e;
    this.dot += d;
    this.q2 += q;
  }
  get snr(): number | null {
    return this.ref2 === 0 ? null : this.err2 === 0 ? 200 : 10 * Math.log10(this.ref2 / this.err2);
  }
  get cosine(): number {
    return cosineOf(this.dot, this.ref2, this.q2);
  }
}

function cosineOf(dot: number, a2: number, b2: number): number {
  return a2 === 0 && b2 === 0 ? 1 : a2 === 0 || b2 === 0 ? 0 : dot / Math.sqrt(a2 * b2);
}

function floats(t: unknown): Float32Array | undefined {
  const d = (t as { data?: unknown } | undefined)?.data;
  return d instanceof Float32Array ? d : undefined;
}

async function session(bytes: Uint8Array, level: InferenceSession.SessionOptions['graphOptimizationLevel'], o: MeasureOptions) {
  const ort = await loadOrt();
  const options: InferenceSession.SessionOptions = {
    graphOptimizationLevel: level,
    intraOpNumThreads: o.threads ?? 1,
    interOpNumThreads: 1,
    enableCpuMemArena: false,
    logSeverityLevel: 3,
  };
  const placed = placeModel(bytes, o);
  try {
    const m = placed.model;
    return 'path' in m ? await ort.InferenceSession.create(m.path, options) : await ort.InferenceSession.create(m.bytes, { ...options, externalData: m.externalData });
  } finally {
    placed.done();
  }
}

function checkAbort(o: MeasureOptions): void {
  if (o.signal?.aborted) throw new Errors.Aborted('the task was cancelled');
  checkpoint(o.cancel);
}

/**
 * `tensors` are named as in the float model; `renamed` gives the quantized model's name
 * where it differs (a quantized graph input is read through its DequantizeLinear's output).
 */
export async function measureActivationErrors(
  float: OnnxModel,
  quantized: OnnxModel,
  tensors: readonly string[],
  samples: SampleFeeds,
  o: MeasureOptions = {},
  renamed: ReadonlyMap<string, string> = new Map(),
): Promise<ActivationErrors> {
  const outputNames = float.graph.outputs.map((v) => v.name);
  const exposed = tensors.filter((t) => !outputNames.includes(t));
  const qName = (t: string) => renamed.get(t) ?? t;
  const sums = new Map(tensors.map((t) => [t, new Sums()]));
  const refOutputs: Record<string, Float32Array>[] = [];
  {
    const f = await session(encodeModelBytes(exposeTensors(float, exposed)), 'basic', o);
    let q: InferenceSession | undefined;
    try {
      // Inside the try: when the quantized session cannot be created, the float one (as big as the model) is still released.
      q = await session(encodeModelBytes(exposeTensors(quantized, exposed.map(qName))), 'disabled', o);
      for (let i = 0; i < samples.count; i++) {
        checkAbort(o);
        const feeds = samples.feeds(i);
        const a = await f.run(feeds);
        const b = await q.run(feeds);
        for (const [name, s] of sums) {
          const x = floats(a[name]);
          const y = floats(b[qName(name)]);
          if (x && y && x.length === y.length) s.add(x, y);
        }
        const keep: Record<string, Float32Array> = {};
        for (const n of outputNames) {
          const x = floats(a[n]);
          if (x) keep[n] = x.slice();
        }
        refOutputs.push(keep);
      }
    } finally {
      try {
        await f.release();
      } finally {
        await q?.release();
      }
    }
  }
  const outputs = await compareFusedOutputs(quantized, refOutputs, samples, o);
  const result = new Map<string, TensorError>();
  for (const [name, s] of sums) if (s.ref2 > 0 || s.q2 > 0) result.set(name, { name, snr_db: s.snr, cosine_similarity: s.cosine });
  return { samples: samples.count, tensors: result, outputs };
}

async function compareFusedOutputs(quantized: OnnxModel, ref: Record<string, Float32Array>[], samples: SampleFeeds, o: MeasureOptions): Promise<OutputError[]> {
  const q = await session(encodeModelBytes(quantized), 'all', o);
  const acc = new Map<string, { sums: Sums; cos: number[]; agree: number; rows: number; dims: readonly number[] }>();
  try {
    for (let i = 0; i < samples.count; i++) {
      checkAbort(o);
      const got = await q.run(samples.feeds(i));
      for (const [name, x] of Object.entries(ref[i]!)) {
        const t = got[name];
        const y = floats(t);
        if (!y || y.length !== x.length) continue;
        const a = acc.get(name) ?? { sums: new Sums(), cos: [], agree: 0, rows: 0, dims: t!.dims };
        const one = new Sums();
        one.add(x, y);
        a.sums.add(x, y);
        a.cos.push(one.cosine);
        const classes = a.dims.length === 2 ? a.dims[1]! : 0;
        if (classes > 1) {
          for (let r = 0; r + classes <= x.length; r += classes) {
            a.rows++;
            if (argmax(x, r, classes) === argmax(y, r, classes)) a.agree++;
          }
        }
        acc.set(name, a);
      }
    }
  } finally {
    await q.release();
  }
  return [...acc].map(([name, a]) => ({
    name,
    cosine_similarity: a.cos.reduce((s, c) => s + c, 0) / Math.max(1, a.cos.length),
    min_cosine_similarity: Math.min(...a.cos),
    snr_db: a.sums.snr,
    top1_agreement: a.rows ? a.agree / a.rows : null,
  }));
}

function argmax(x: ArrayLike<number>, from: number, n: number): number {
  let best = 0;
  for (let k = 1; k < n; k++) if (x[from + k]! > x[from + best]!) best = k;
  return best;
}

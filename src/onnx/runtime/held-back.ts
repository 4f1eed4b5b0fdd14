import type { Tensor } from 'onnxruntime-node';
import { halfToFloat } from '../../core/float16.js';
import { checkpoint, type CancelFlag } from '../../pool/cancel.js';
import { Sums, type SampleFeeds } from './activation-error.js';
import { baseOptions, withSession, type ModelBytes } from './validate.js';

// The float and the quantized model on the same held-back samples, output by output: the
// error a user sees (for a language model, the logits perplexity is computed from). The
// quantized model runs with qdq_matmulnbits_accuracy_level 0, so the figures are what the
// weights cost, not onnxruntime's int8 activation kernels (WEIGHTS_ONLY_SETTINGS).

export interface HeldBackOutput {
  name: string;
  /** 10 log10(Σ ref² / Σ (ref − q)²) over every held-back sample. */
  snr_db: number | null;
  /** Mean over samples of each sample's cosine similarity, and the lowest. */
  cosine_similarity: number;
  min_cosine_similarity: number;
  /** Share of rows along the last axis (classes, vocabulary) whose argmax agrees; null for outputs of rank < 2. */
  top1_agreement: number | null;
}

/** A float output's values; float16 ones widened (a float16 model's outputs were left out of the comparison). */
function floats(t: Tensor | undefined): Float32Array | undefined {
  if (!t) return undefined;
  if (t.data instanceof Float32Array) return t.data;
  if (t.type === 'float16' && t.data instanceof Uint16Array) return Float32Array.from(t.data, halfToFloat);
  return undefined;
}

function argmax(x: Float32Array, from: number, n: number): number {
  let best = 0;
  for (let k = 1; k < n; k++) if (x[from + k]! > x[from + best]!) best = k;
  return best;
}

export async function compareOnSamples(float: ModelBytes, quantized: ModelBytes, samples: SampleFeeds, o: { cancel?: CancelFlag | undefined } = {}): Promise<HeldBackOutput[]> {
  const acc = new Map<string, { sums: Sums; cos: number[]; agree: number; rows: number }>();
  const weightsOnly = { ...baseOptions(1), extra: { session: { qdq_matmulnbits_accuracy_level: '0' } } };
  await withSession(float, baseOptions(1), (f) =>
    withSession(quantized, weightsOnly, async (q) => {
      for (let i = 0; i < samples.count; i++) {
        checkpoint(o.cancel);
        const feeds = samples.feeds(i);
        const a = await f.run(feeds);
        const b = await q.run(feeds);
        for (const name of f.outputNames) {
          const x = floats(a[name]);
          const y = floats(b[name]);
          if (!x || !y || x.length !== y.length) continue;
          const e = acc.get(name) ?? { sums: new Sums(), cos: [], agree: 0, rows: 0 };
          const one = new Sums();
          one.add(x, y);
          e.sums.add(x, y);
          e.cos.push(one.cosine);
          const dims = a[name]!.dims;
          const last = dims.length >= 2 ? dims[dims.length - 1]! : 0;
          if (last > 1) {
            for (let r = 0; r + last <= x.length; r += last) {
              e.rows++;
              if (argmax(x, r, last) === argmax(y, r, last)) e.agree++;
            }
          }
          acc.set(name, e);
        }
      }
    }),
  );
  return [...acc].map(([name, e]) => ({
    name,
    snr_db: e.sums.snr,
    cosine_similarity: e.cos.reduce((s, c) => s + c, 0) / Math.max(1, e.cos.length),
    min_cosine_similarity: Math.min(...e.cos),
    top1_agreement: e.rows ? e.agree / e.rows : null,
  }));
}

import * as ort from 'onnxruntime-node';
import type { PerplexityOptions } from './char-lm.js';

// What a quantized char LM is judged by beside perplexity, against the float model on the
// same windows (the windows and targets of char-lm.ts):
// - KL divergence of the quantized model's next-char distribution from the float one's,
//   mean over every predicted character, in nats (llama.cpp's `perplexity --kl-divergence`
//   figure: Σ_v p_v·(log p_v − log q_v) per token, p the float model's softmax);
// - logits SNR, 10·log10(Σ f² / Σ (f − q)²) over every logit of every window;
// - per-window NLL sums, so two models scored on the same windows are compared paired.
// Sessions run with one intra-op thread and are released before returning.

export interface LmReference {
  context: number;
  vocab: number;
  windows: number;
  /** The float model's log-softmax, one [context, vocab] block per window (float64). */
  logProbs: Float64Array[];
  logits: Float32Array[];
  /** Sum of NLL over the window's predicted characters. */
  windowNll: Float64Array;
  perplexity: number;
}

export interface LmComparison {
  perplexity: number;
  windowNll: Float64Array;
  /** Mean KL(float ‖ quantized) per predicted character, nats. */
  kld: number;
  /** Per-window mean KLD (its spread gives the KLD's standard error). */
  windowKld: Float64Array;
  logitsSnrDb: number;
  /** Share of predicted characters whose most likely next character is the float model's. */
  top1Agreement: number;
}

function logSoftmax(logits: Float32Array, row: number, vocab: number, out: Float64Array): void {
  let max = -Infinity;
  for (let v = 0; v < vocab; v++) if (logits[row + v]! > max) max = logits[row + v]!;
  let sum = 0;
  for (let v = 0; v < vocab; v++) sum += Math.exp(logits[row + v]! - max);
  const lse = Math.log(sum) + max;
  for (let v = 0; v < vocab; v++) out[row + v] = logits[row + v]! - lse;
}

function argmax(a: ArrayLike<number>, from: number, n: number): number {
  let best = 0;
  for (let v = 1; v < n; v++) if (a[from + v]! > a[from + best]!) best = v;
  return best;
}

async function eachWindow(model: Uint8Array, ids: BigInt64Array, options: PerplexityOptions, f: (w: number, start: number, logits: Float32Array, vocab: number) => void): Promise<number> {
  const { context } = options;
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1, ...options.sessionOptions });
  try {
    const inputName = options.inputName ?? session.inputNames[0]!;
    const outputName = options.outputName ?? session.outputNames[0]!;
    let w = 0;
    for (let s = 0; s + context + 1 <= ids.length; s += context) {
      if (options.maxWindows !== undefined && w >= options.maxWindows) break;
      const out = (await session.run({ [inputName]: new ort.Tensor('int64', ids.slice(s, s + context), [1, context]) }))[outputName]!;
      if (out.dims.length !== 3 || out.dims[1] !== context) throw new Error(`output ${outputName} has dims [${out.dims.join(', ')}], expected [1, ${context}, vocab]`);
      f(w, s, out.data as Float32Array, out.dims[2]!);
      w++;
    }
    return w;
  } finally {
    await session.release();
  }
}

export async function lmReference(model: Uint8Array, ids: BigInt64Array, options: PerplexityOptions): Promise<LmReference> {
  const { context } = options;
  const logProbs: Float64Array[] = [];
  const logits: Float32Array[] = [];
  const nll: number[] = [];
  let vocab = 0;
  const windows = await eachWindow(model, ids, options, (_w, s, out, v) => {
    vocab = v;
    const lp = new Float64Array(context * v);
    let sum = 0;
    for (let t = 0; t < context; t++) {
      logSoftmax(out, t * v, v, lp);
      sum -= lp[t * v + Number(ids[s + 1 + t])]!;
    }
    logProbs.push(lp);
    logits.push(Float32Array.from(out));
    nll.push(sum);
  });
  const windowNll = Float64Array.from(nll);
  const total = windowNll.reduce((a, b) => a + b, 0);
  return { context, vocab, windows, logProbs, logits, windowNll, perplexity: Math.exp(total / (windows * context)) };
}

export async function lmCompare(model: Uint8Array, ids: BigInt64Array, options: PerplexityOptions, ref: LmReference): Promise<LmComparison> {
  const { context } = options;
  const windowNll = new Float64Array(ref.windows);
  const windowKld = new Float64Array(ref.windows);
  let signal = 0;
  let noise = 0;
  let agree = 0;
  const lq = new Float64Array(context * ref.vocab);
  const windows = await eachWindow(model, ids, options, (w, s, out, v) => {
    if (v !== ref.vocab || w >= ref.windows) throw new Error(`window ${w}: vocabulary ${v}, the reference has ${ref.vocab} over ${ref.windows} windows`);
    const lp = ref.logProbs[w]!;
    const f = ref.logits[w]!;
    let nll = 0;
    let kld = 0;
    for (let t = 0; t < context; t++) {
      const row = t * v;
      logSoftmax(out, row, v, lq);
      nll -= lq[row + Number(ids[s + 1 + t])]!;
      for (let k = 0; k < v; k++) kld += Math.exp(lp[row + k]!) * (lp[row + k]! - lq[row + k]!);
      if (argmax(out, row, v) === argmax(f, row, v)) agree++;
    }
    for (let i = 0; i < f.length; i++) {
      signal += f[i]! * f[i]!;
      noise += (f[i]! - out[i]!) ** 2;
    }
    windowNll[w] = nll;
    windowKld[w] = kld / context;
  });
  if (windows !== ref.windows) throw new Error(`${windows} windows scored, the reference has ${ref.windows}`);
  const total = windowNll.reduce((a, b) => a + b, 0);
  return {
    perplexity: Math.exp(total / (windows * context)),
    windowNll,
    kld: windowKld.reduce((a, b) => a + b, 0) / windows,
    windowKld,
    logitsSnrDb: noise > 0 ? 10 * Math.log10(signal / noise) : Infinity,
    top1Agreement: agree / (windows * context),
  };
}

export interface PairedInterval {
  /** Perplexity of b minus perplexity of a (b's per-window NLL against a's). */
  increase: number;
  /** The 95% interval of that difference from the per-window spread (normal approximation, exp of mean NLL ± 1.96·s/√n). */
  lo: number;
  hi: number;
}

/**
 * How far b's perplexity is from a's, with a 95% interval from the paired per-window NLL
 * differences: d_w = (NLL_b(w) − NLL_a(w)) / context, mean d̄ and standard error s/√n; the
 * perplexity difference is exp(mean NLL_a)·(exp(d̄) − 1) and its bounds use d̄ ± 1.96·s/√n.
 * Windows of one text are not independent draws (neighbouring code shares identifiers), so
 * this is the evaluation text's sampling noise, not a bound on everything.
 */
export function pairedIncrease(a: Float64Array, b: Float64Array, context: number): PairedInterval {
  const n = a.length;
  if (b.length !== n || n < 2) throw new Error(`paired comparison needs the same windows (≥ 2): ${a.length} and ${b.length}`);
  let sumA = 0;
  let sumD = 0;
  for (let i = 0; i < n; i++) {
    sumA += a[i]!;
    sumD += (b[i]! - a[i]!) / context;
  }
  const mean = sumD / n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += ((b[i]! - a[i]!) / context - mean) ** 2;
  const se = Math.sqrt(ss / (n - 1) / n);
  const base = Math.exp(sumA / (n * context));
  return { increase: base * (Math.exp(mean) - 1), lo: base * (Math.exp(mean - 1.96 * se) - 1), hi: base * (Math.exp(mean + 1.96 * se) - 1) };
}

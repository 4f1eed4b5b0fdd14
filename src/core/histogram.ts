import { f32 } from './round.js';

// Streaming activation histograms, reduced sample by sample, as onnxruntime's
// HistogramCollector (onnxruntime/python/tools/quantization/calibrate.py) builds them when its
// collect() is called once per sample:
//
// - SignedHistogram is collect_value + merge_histogram (entropy, asymmetric percentile; here
//   also mse): bins over [-t, t], t = max(|min|, |max|) of the first sample. A later sample
//   whose t is not larger is binned over the same range and added; a larger one widens the
//   range symmetrically by whole bins of the same stride (half = int((t_new - t_old) // stride
//   + 1) bins each side, t_new = half·stride + t_old) and the old counts go into the centre.
// - AbsHistogram is collect_absolute_value (symmetric percentile): |x| binned over numpy's
//   default range [min|x|, max|x|] of the first sample; a later sample whose max|x| passes the
//   last edge appends edges of the same width (np.arange), and is binned on those edges.
//
// Binning reproduces np.histogram as numpy 1.24 computes it on float32 data (edges from
// np.linspace in float64 rounded to float32, the uniform-bin index formula in float32 with its
// ±1 corrections, explicit edges compared exactly, thresholds held as float32 or float64 as
// numpy's promotion leaves them), so bins, counts and edges are numpy's bit for bit
// (test/fixtures/activation-calibration). numpy 2's promotion rules can move an edge by an ulp.
//
// Two departures, both documented in the README: onnxruntime's histograms grow without bound
// (a first sample with a tiny range followed by a wide one makes millions of bins); here, when
// growth would pass `maxBins`, adjacent bins are merged in pairs (the stride doubles, and 0
// stays an edge) until it fits, so memory is bounded by bins, never by N or by the data.
// And non-finite values (NaN, ±Infinity) are left out of the bins (onnxruntime's np.histogram
// raises on them); the extremes skip NaN as np.nanmin/np.nanmax do.

/**
 * The endpoints of a histogram's range and the precision numpy holds them in: float32 scalars
 * (a threshold as onnxruntime stores it) or float64 ones (a threshold grown by merge_histogram,
 * or a range widened by ±0.5). numpy 1.x promotes float32 scalars mixed with Python numbers to
 * float64, and that decides how the edges are rounded.
 */
interface Span {
  first: number;
  last: number;
  f64: boolean;
}

/** np.histogram widens an empty range by ±0.5 (a float64 result). */
function outer(first: number, last: number, f64: boolean): Span {
  return first === last ? { first: first - 0.5, last: last + 0.5, f64: true } : { first, last, f64 };
}

/**
 * np.linspace(first, last, bins + 1, dtype=float32) as numpy 1.24 computes it: in float64, each
 * edge rounded to float32 once.
 */
function linspaceEdges(s: Span, bins: number): Float32Array {
  const edges = new Float32Array(bins + 1);
  // numpy 1.24's linspace multiplies start and stop by 1.0 first: float64 from there on.
  const delta = s.last - s.first;
  const step = delta / bins;
  for (let k = 0; k < bins; k++) edges[k] = step === 0 ? (k / bins) * delta + s.first : k * step + s.first;
  edges[bins] = s.last;
  return edges;
}

/**
 * np.histogram(x, bins, range=span) on float32 x, added into `count` (and each bin's sum and
 * sum of squares into `sum`/`sq` when given): numpy's uniform-bin path, in its precisions.
 */
function binUniform(x: ArrayLike<number>, bins: number, s: Span, count: Float64Array, sum?: Float64Array, sq?: Float64Array): void {
  const edges = linspaceEdges(s, bins);
  const first = f32(s.first);
  const last = f32(s.last);
  const norm = f32(bins / (s.f64 ? s.last - s.first : f32(s.last - s.first)));
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (!(v >= first && v <= last)) continue;
    let k = Math.trunc(f32(f32(v - first) * norm));
    if (k === bins) k--;
    if (v < edges[k]!) k--;
    else if (k !== bins - 1 && v >= edges[k + 1]!) k++;
    count[k]!++;
    if (sum) {
      sum[k]! += v;
      sq![k]! += v * v;
    }
  }
}

/** Extremes skipping NaN, as np.nanmin / np.nanmax (0 and 0 for no value, as onnxruntime). */
function extremes(x: ArrayLike<number>): { min: number; max: number; any: boolean } {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return min <= max ? { min, max, any: true } : { min: 0, max: 0, any: false };
}

/** Values that np.histogram can bin (onnxruntime's raises on the others). */
function finite(x: ArrayLike<number>): ArrayLike<number> {
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i]!)) return Float32Array.from(Array.prototype.filter.call(x, Number.isFinite) as number[]);
  }
  return x;
}

/** numpy's float64 floor_divide (npy_divmod): (a - fmod(a, b)) / b, snapped to the nearest integer. */
function floorDivide(a: number, b: number): number {
  const mod = a % b;
  let div = (a - mod) / b;
  if (mod !== 0 && b < 0 !== mod < 0) div -= 1;
  if (div === 0) return 0;
  let floordiv = Math.floor(div);
  if (div - floordiv > 0.5) floordiv += 1;
  return floordiv;
}

export interface HistogramView {
  /** Counts per bin. */
  readonly count: Float64Array;
  /** bins + 1 edges (float32 values). */
  edges(): Float32Array;
  /** The extremes of every value seen (NaN skipped). */
  readonly min: number;
  readonly max: number;
}

/** onnxruntime's collect_value / merge_histogram, streamed (see the top of the file). */
export class SignedHistogram implements HistogramView {
  count: Float64Array;
  /** Per-bin sum and sum of squares of the values (for MSE scoring; merged the same way). */
  sum: Float64Array;
  sq: Float64Array;
  /** The histogram covers [-threshold, threshold] (np.histogram widens a zero range to ±0.5). */
  threshold = 0;
  /** Whether numpy would hold the threshold as float64 (once merge_histogram has grown it). */
  #thresholdF64 = false;
  min = 0;
  max = 0;
  #started = false;
  readonly #maxBins: number;

  constructor(readonly numBins: number, maxBins = Math.max(4 * numBins, 4096)) {
    if (!Number.isInteger(numBins) || numBins < 2 || numBins % 2 !== 0) throw new RangeError(`numBins must be an even integer ≥ 2, got ${numBins}`);
    this.#maxBins = Math.max(maxBins, numBins);
    this.count = new Float64Array(numBins);
    this.sum = new Float64Array(numBins);
    this.sq = new Float64Array(numBins);
  }

  get bins(): number {
    return this.count.length;
  }

  edges(): Float32Array {
    return linspaceEdges(this.#span(this.threshold, this.#thresholdF64), this.bins);
  }

  #span(t: number, f64: boolean): Span {
    return outer(-t, t, f64);
  }

  add(raw: ArrayLike<number>): void {
    const e = extremes(raw);
    const x = finite(raw);
    const newMin = e.min;
    const newMax = e.max;
    // max(|min|, |max|) of what can be binned (the same as onnxruntime's unless ±Infinity is present).
    const b = x === raw ? e : extremes(x);
    const t = Math.max(Math.abs(b.min), Math.abs(b.max));
    if (!this.#started) {
      this.#started = true;
      this.min = newMin;
      this.max = newMax;
      this.threshold = t;
      binUniform(x, this.bins, this.#span(t, false), this.count, this.sum, this.sq);
      return;
    }
    this.min = Math.min(this.min, newMin);
    this.max = Math.max(this.max, newMax);
    const old = this.threshold;
    if (t <= old) {
      binUniform(x, this.bins, this.#span(old, this.#thresholdF64), this.count, this.sum, this.sq);
      return;
    }
    if (old === 0) {
      // onnxruntime adds the old counts bin by bin into a histogram of the new range.
      binUniform(x, this.bins, this.#span(t, false), this.count, this.sum, this.sq);
      this.threshold = t;
      this.#thresholdF64 = false;
      return;
    }
    let half = this.#halfIncrease(t);
    while (this.bins + 2 * half > this.#maxBins && this.bins >= 4) {
      this.#coarsen();
      half = this.#halfIncrease(t);
    }
    const stride = (2 * this.threshold) / this.bins;
    const newBins = this.bins + 2 * half;
    const newT = half * stride + this.threshold;
    const count = new Float64Array(newBins);
    const sum = new Float64Array(newBins);
    const sq = new Float64Array(newBins);
    binUniform(x, newBins, this.#span(newT, true), count, sum, sq);
    for (let k = 0; k < this.bins; k++) {
      count[half + k]! += this.count[k]!;
      sum[half + k]! += this.sum[k]!;
      sq[half + k]! += this.sq[k]!;
    }
    this.count = count;
    this.sum = sum;
    this.sq = sq;
    this.threshold = newT;
    this.#thresholdF64 = true;
  }

  /** int((t - old) // stride + 1), stride = 2·old / bins, in numpy's precisions. */
  #halfIncrease(t: number): number {
    const stride = (2 * this.threshold) / this.bins;
    const diff = this.#thresholdF64 ? t - this.threshold : f32(t - this.threshold);
    return Math.trunc(floorDivide(diff, stride) + 1);
  }

  /** Halves the bins (pairs merged outward from 0), first padding a bin each side if needed. */
  #coarsen(): void {
    let bins = this.bins;
    let count = this.count;
    let sum = this.sum;
    let sq = this.sq;
    if ((bins / 2) % 2 !== 0) {
      const stride = (2 * this.threshold) / bins;
      const pad = (a: Float64Array) => {
        const out = new Float64Array(bins + 2);
        out.set(a, 1);
        return out;
      };
      count = pad(count);
      sum = pad(sum);
      sq = pad(sq);
      this.threshold += stride;
      this.#thresholdF64 = true;
      bins += 2;
    }
    const merge = (a: Float64Array) => {
      const out = new Float64Array(bins / 2);
      for (let k = 0; k < out.length; k++) out[k] = a[2 * k]! + a[2 * k + 1]!;
      return out;
    };
    this.count = merge(count);
    this.sum = merge(sum);
    this.sq = merge(sq);
  }
}

/**
 * np.arange(start, stop, step) on float32 scalars as numpy 1.24 makes it: the length from float32
 * arithmetic, a float64 array start, f32(start + step), then start + i·(second − start).
 */
function arange32(start: number, stop: number, step: number): number[] {
  const n = Math.ceil(f32(f32(stop - start) / step));
  if (!(n > 0)) return [];
  const out = [start];
  if (n > 1) {
    const b1 = f32(start + step);
    out.push(b1);
    const delta = b1 - start;
    for (let i = 2; i < n; i++) out.push(start + i * delta);
  }
  return out;
}

/** onnxruntime's collect_absolute_value, streamed (see the top of the file). */
export class AbsHistogram implements HistogramView {
  count: Float64Array;
  #edges: Float32Array;
  min = 0;
  max = 0;
  #started = false;
  readonly #maxBins: number;

  constructor(readonly numBins: number, maxBins = Math.max(4 * numBins, 4096)) {
    if (!Number.isInteger(numBins) || numBins < 1) throw new RangeError(`numBins must be a positive integer, got ${numBins}`);
    this.#maxBins = Math.max(maxBins, numBins);
    this.count = new Float64Array(numBins);
    this.#edges = new Float32Array(numBins + 1);
  }

  get bins(): number {
    return this.count.length;
  }

  edges(): Float32Array {
    return this.#edges;
  }

  add(raw: ArrayLike<number>): void {
    const e = extremes(raw);
    const fin = finite(raw);
    const abs = new Float32Array(fin.length);
    for (let i = 0; i < fin.length; i++) abs[i] = Math.abs(fin[i]!);
    if (!this.#started) {
      this.#started = true;
      this.min = e.min;
      this.max = e.max;
      // numpy's default range: [min, max] of the data, (0, 1) for no data.
      const a = extremes(abs);
      const span = a.any ? outer(a.min, a.max, false) : { first: 0, last: 1, f64: true };
      this.#edges = linspaceEdges(span, this.numBins);
      binUniform(abs, this.numBins, span, this.count);
      return;
    }
    this.min = Math.min(this.min, e.min);
    this.max = Math.max(this.max, e.max);
    const amax = extremes(abs).max;
    let edges: Float32Array | Float64Array = this.#edges;
    let count = this.count;
    if (amax > edges[edges.length - 1]!) {
      let grown = AbsHistogram.#grow(this.#edges, amax);
      while (grown.length - 1 > this.#maxBins && count.length >= 2) {
        let coarse: Float32Array;
        ({ edges: coarse, count } = AbsHistogram.#coarsen(this.#edges, count));
        this.#edges = coarse;
        grown = AbsHistogram.#grow(coarse, amax);
      }
      edges = grown;
    }
    const next = new Float64Array(edges.length - 1);
    binEdges(abs, edges, next);
    for (let k = 0; k < count.length; k++) next[k]! += count[k]!;
    this.count = next;
    // onnxruntime stores the edges back as float32 (hist_edges.astype(data.dtype)).
    this.#edges = Float32Array.from(edges);
  }

  /** The edges with np.arange's new ones appended, in float64 as numpy's hstack holds them. */
  static #grow(edges: Float32Array, amax: number): Float64Array {
    const width = f32(edges[1]! - edges[0]!);
    const last = edges[edges.length - 1]!;
    const extra = arange32(f32(last + width), f32(amax + width), width);
    const out = new Float64Array(edges.length + extra.length);
    out.set(edges);
    out.set(extra, edges.length);
    return out;
  }

  /** Every other edge (adjacent bins merged), after appending one edge of the same width if the bin count is odd. */
  static #coarsen(edges: Float32Array, count: Float64Array): { edges: Float32Array; count: Float64Array } {
    let e = edges;
    let c = count;
    if (c.length % 2 !== 0) {
      const width = f32(e[1]! - e[0]!);
      const padded = new Float32Array(e.length + 1);
      padded.set(e);
      padded[e.length] = f32(e[e.length - 1]! + width);
      e = padded;
      const pc = new Float64Array(c.length + 1);
      pc.set(c);
      c = pc;
    }
    const edgesOut = new Float32Array(c.length / 2 + 1);
    for (let k = 0; k < edgesOut.length; k++) edgesOut[k] = e[2 * k]!;
    const countOut = new Float64Array(c.length / 2);
    for (let k = 0; k < countOut.length; k++) countOut[k] = c[2 * k]! + c[2 * k + 1]!;
    return { edges: edgesOut, count: countOut };
  }
}

/** np.histogram(x, bins=edges): bin k holds edges[k] ≤ v < edges[k+1], the last bin also v = edges[-1]. */
function binEdges(x: ArrayLike<number>, edges: Float32Array | Float64Array, count: Float64Array): void {
  const bins = edges.length - 1;
  const first = edges[0]!;
  const last = edges[bins]!;
  const width = (last - first) / bins;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (!(v >= first && v <= last)) continue;
    let k = Math.min(bins - 1, Math.max(0, Math.floor((v - first) / width)));
    while (k > 0 && v < edges[k]!) k--;
    while (k < bins - 1 && v >= edges[k + 1]!) k++;
    count[k]!++;
  }
}

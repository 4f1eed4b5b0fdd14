import { histogramError, paramsFromRange, shrinkRange, type IntParams, type Range } from './calibrate.js';
import type { HistogramView, SignedHistogram } from './histogram.js';
import { f32 } from './round.js';

// The clip range each histogram method chooses for an activation, from the histograms of
// histogram.ts. percentile and entropy follow onnxruntime's HistogramCollector
// (compute_percentile, get_entropy_threshold in calibrate.py) step for step; mse is this
// service's own: the tensor API's clip search (core/calibrate.ts mseRange) scored on the
// histogram instead of on the values.

/** Onnxruntime clips every histogram threshold to the observed extremes. */
function clipToObserved(r: Range, h: HistogramView): Range {
  return { lo: r.lo < h.min ? h.min : r.lo, hi: r.hi > h.max ? h.max : r.hi };
}

/** np.searchsorted(cdf, v) (side 'left') on a non-decreasing cdf. */
function searchsorted(cdf: Float64Array, v: number): number {
  let lo = 0;
  let hi = cdf.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cdf[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * compute_percentile: the edge where the histogram's CDF reaches p% (symmetric: an AbsHistogram
 * of |x|, range ±edge), or the edges where it reaches (100 − p)/200 and 1 − (100 − p)/200
 * (asymmetric: a SignedHistogram), clipped to the observed extremes.
 */
export function percentileThreshold(h: HistogramView, percentile: number, symmetric: boolean): Range {
  let total = 0;
  for (const c of h.count) total += c;
  if (total === 0) return { lo: 0, hi: 0 };
  const cdf = new Float64Array(h.count.length);
  let acc = 0;
  for (let i = 0; i < cdf.length; i++) cdf[i] = acc += h.count[i]! / total;
  const edges = h.edges();
  let r: Range;
  if (symmetric) {
    const e = edges[searchsorted(cdf, percentile / 100)]!;
    r = { lo: -e, hi: e };
  } else {
    const cut = (100 - percentile) / 200;
    r = { lo: edges[searchsorted(cdf, cut)]!, hi: edges[searchsorted(cdf, 1 - cut)]! };
  }
  return clipToObserved(r, h);
}

/** smooth_distribution(p, eps=1e-4) in float32 as numpy computes it; undefined when p is all zero. */
function smooth(p: Float64Array): Float32Array | undefined {
  let zeros = 0;
  for (const v of p) if (v === 0) zeros++;
  const nonzeros = p.length - zeros;
  if (nonzeros === 0) return undefined;
  const eps = f32(1e-4);
  const eps1 = f32(-((1e-4 * zeros) / nonzeros));
  const out = new Float32Array(p.length);
  for (let i = 0; i < p.length; i++) out[i] = f32(f32(p[i]!) + (p[i] === 0 ? eps : eps1));
  return out;
}

/** scipy.stats.entropy(p, q): KL(p‖q) of the normalised distributions (natural log), in float64. */
function kl(p: Float32Array, q: Float32Array): number {
  let sp = 0;
  let sq = 0;
  for (let i = 0; i < p.length; i++) {
    sp += p[i]!;
    sq += q[i]!;
  }
  let s = 0;
  for (let i = 0; i < p.length; i++) {
    const a = p[i]! / sp;
    const b = q[i]! / sq;
    if (a > 0) s += b > 0 ? a * Math.log(a / b) : Infinity;
  }
  return s;
}

/**
 * get_entropy_threshold (the TensorRT KL method as onnxruntime codes it): for each window of
 * 2i + 1 bins around the centre (i from numQuantizedBins/2 to bins/2), the reference p is the
 * window with the outliers added to its end bins, the candidate q the window merged into
 * numQuantizedBins bins (leftover bins into the last) and spread back, as integers, over each
 * merged span; both smoothed; the window with the least KL(p‖q) gives the range, clipped to the
 * observed extremes. The divergences are summed in float64 where scipy sums float32.
 */
export function entropyThreshold(h: SignedHistogram, numQuantizedBins: number): Range {
  const hist = h.count;
  const bins = hist.length;
  const edges = h.edges();
  const zero = Math.floor(bins / 2);
  const halfQ = Math.floor(numQuantizedBins / 2);
  // onnxruntime fails here (np.zeros of a negative size); the whole histogram is what is left.
  if (halfQ > zero) return clipToObserved({ lo: edges[0]!, hi: edges[bins]! }, h);
  const prefix = new Float64Array(bins + 1);
  for (let k = 0; k < bins; k++) prefix[k + 1] = prefix[k]! + hist[k]!;
  let best = Infinity;
  let chosen: Range | undefined;
  for (let i = halfQ; i <= zero; i++) {
    const start = zero - i;
    const end = Math.min(zero + i + 1, bins);
    const len = end - start;
    const p = new Float64Array(len);
    for (let k = 0; k < len; k++) p[k] = hist[start + k]!;
    p[0]! += prefix[start]!;
    p[len - 1]! += prefix[bins]! - prefix[end]!;
    const merged = Math.floor(len / numQuantizedBins);
    const quantized = new Float64Array(numQuantizedBins);
    for (let j = 0; j < numQuantizedBins; j++) quantized[j] = prefix[start + (j + 1) * merged]! - prefix[start + j * merged]!;
    quantized[numQuantizedBins - 1]! += prefix[end]! - prefix[start + numQuantizedBins * merged]!;
    const q = new Float64Array(len);
    for (let j = 0; j < numQuantizedBins; j++) {
      const a = j * merged;
      const b = a + merged;
      let norm = 0;
      for (let k = a; k < b; k++) if (p[k] !== 0) norm++;
      // q is an int64 array in onnxruntime: the quotient is truncated.
      if (norm !== 0) q.fill(Math.trunc(quantized[j]! / norm), a, b);
    }
    const ps = smooth(p);
    const qs = smooth(q);
    const div = ps && qs ? f32(kl(ps, qs)) : Infinity;
    // np.argmin: the first of equal minima (the first window when every divergence is infinite).
    if (chosen === undefined || div < best) {
      best = div;
      chosen = { lo: edges[start]!, hi: edges[end]! };
    }
  }
  return clipToObserved(chosen!, h);
}

const COARSE_STEPS = 128;
const FINE_STEPS = 64;

/**
 * The clip range whose quantization (p: bits and scheme, scale and zero point as the tensor API
 * makes them, so 0 is always representable) has the least expected squared error over the
 * histogram: clip ratios r of the observed range on a coarse grid, then a fine grid around the
 * best, as core/calibrate.ts mseRange does on raw values.
 */
export function mseThreshold(h: SignedHistogram, p: IntParams): Range {
  const alpha = Math.max(Math.abs(h.min), Math.abs(h.max));
  const full = p.scheme === 'symmetric' ? { lo: -alpha, hi: alpha } : { lo: h.min, hi: h.max };
  if (!(full.hi > full.lo) || !Number.isFinite(full.hi - full.lo)) return full;
  const [first, last] = [h.edges()[0]!, h.edges()[h.bins]!];
  const sums = { lo: first, width: (last - first) / h.bins, count: h.count, sum: h.sum, sq: h.sq };
  const score = (r: number) => {
    const { scale, zeroPoint } = paramsFromRange(shrinkRange(full, r), p);
    return histogramError(sums, scale, zeroPoint, p);
  };
  let best = { r: 1, err: score(1) };
  const consider = (r: number) => {
    const err = score(r);
    if (err < best.err || (err === best.err && r > best.r)) best = { r, err };
  };
  for (let i = 1; i < COARSE_STEPS; i++) consider(i / COARSE_STEPS);
  const from = Math.max(best.r - 1 / COARSE_STEPS, 1 / (COARSE_STEPS * FINE_STEPS));
  const to = Math.min(best.r + 1 / COARSE_STEPS, 1);
  for (let k = 0; k <= FINE_STEPS; k++) consider(from + ((to - from) * k) / FINE_STEPS);
  return shrinkRange(full, best.r);
}

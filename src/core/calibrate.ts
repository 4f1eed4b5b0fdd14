import { minmaxOf } from './kernels/calibrate.js';
import { histogram, histogramErrors, squaredErrors } from './kernels/mse.js';
import { clamp, f32, mulSat, rint } from './round.js';

export const CALIBRATIONS = ['minmax', 'percentile', 'mse'] as const;
export type CalibrationMethod = (typeof CALIBRATIONS)[number];
export const SCHEMES = ['symmetric', 'asymmetric'] as const;
export type Scheme = (typeof SCHEMES)[number];

/** A calibrated clip range. Symmetric ranges are [-alpha, alpha]. */
export interface Range {
  lo: number;
  hi: number;
}

export interface IntParams {
  bits: number;
  scheme: Scheme;
  qMin: number;
  qMax: number;
}

/** scale and zero point from a calibrated range, in float32 as the references compute them. */
export function paramsFromRange(range: Range, p: IntParams): { scale: number; zeroPoint: number } {
  if (p.scheme === 'symmetric') {
    const scale = f32(range.hi / p.qMax);
    // A zero range (or one so small its scale underflows) keeps scale 1: never a division by zero.
    return { scale: scale > 0 ? scale : 1, zeroPoint: 0 };
  }
  const lo = Math.min(range.lo, 0);
  const hi = Math.max(range.hi, 0);
  const steps = p.qMax - p.qMin;
  let scale = f32(f32(hi - lo) / steps);
  // hi - lo can overflow float32 where the reference formula would give Infinity; divide first.
  if (!Number.isFinite(scale)) scale = f32(hi / steps - lo / steps);
  if (!(scale > 0)) scale = 1;
  const zeroPoint = clamp(p.qMin - rint(f32(lo / scale)), p.qMin, p.qMax);
  return { scale, zeroPoint };
}

export function minmaxRange(x: Float32Array, scheme: Scheme): Range {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (scheme === 'symmetric') {
    const alpha = Math.max(Math.abs(lo), Math.abs(hi));
    return { lo: -alpha, hi: alpha };
  }
  return { lo, hi };
}

/** k-th smallest (0-based) of a, by in-place quickselect (Floyd-Rivest would be faster; this is the oracle). */
function select(a: Float32Array, k: number, left = 0, right = a.length - 1): number {
  while (right > left) {
    // Median of three keeps sorted and reverse-sorted inputs linear.
    const mid = (left + right) >>> 1;
    if (a[mid]! < a[left]!) swap(a, mid, left);
    if (a[right]! < a[left]!) swap(a, right, left);
    if (a[right]! < a[mid]!) swap(a, right, mid);
    const pivot = a[mid]!;
    let i = left;
    let j = right;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        swap(a, i, j);
        i++;
        j--;
      }
    }
    if (k <= j) right = j;
    else if (k >= i) left = i;
    else return a[k]!;
  }
  return a[k]!;
}

function swap(a: Float32Array, i: number, j: number): void {
  const t = a[i]!;
  a[i] = a[j]!;
  a[j] = t;
}

function minFrom(a: Float32Array, from: number): number {
  let m = Infinity;
  for (let i = from; i < a.length; i++) if (a[i]! < m) m = a[i]!;
  return m;
}

/**
 * numpy.percentile(a, p) with method 'linear', bit for bit for float32 input: the virtual
 * index is computed in float64, the interpolation in float32 (NumPy 2 treats the Python
 * float gamma as a weak scalar). Reorders `scratch`.
 */
export function percentileOf(scratch: Float32Array, p: number): number {
  const n = scratch.length;
  const vi = (n - 1) * (p / 100);
  const lo = Math.floor(vi);
  const gamma = vi - lo;
  const a = select(scratch, lo);
  const b = lo + 1 < n ? minFrom(scratch, lo + 1) : a;
  const diff = f32(b - a);
  return gamma < 0.5 ? f32(a + f32(diff * f32(gamma))) : f32(b - f32(diff * f32(1 - gamma)));
}

export function percentileRange(x: Float32Array, scheme: Scheme, p: number): Range {
  const scratch = new Float32Array(x.length);
  if (scheme === 'symmetric') {
    for (let i = 0; i < x.length; i++) scratch[i] = Math.abs(x[i]!);
    const alpha = percentileOf(scratch, p);
    return { lo: -alpha, hi: alpha };
  }
  scratch.set(x);
  const hi = percentileOf(scratch, p);
  const lo = percentileOf(scratch, 100 - p);
  return { lo, hi };
}

/** Sum of squared dequantization errors of x under one scale and zero point. */
export function sumSquaredError(x: Float32Array, scale: number, zeroPoint: number, qMin: number, qMax: number): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    const q = clamp(rint(f32(v / scale)) + zeroPoint, qMin, qMax);
    const e = v - mulSat(q - zeroPoint, scale);
    s += e * e;
  }
  return s;
}

/** The candidate range at clip ratio r of the min-max range (both ends shrink together). */
export function shrinkRange(full: Range, r: number): Range {
  return { lo: f32(full.lo * r), hi: f32(full.hi * r) };
}

/** Above this many values the search scores candidates on a histogram instead of on every value. */
const MSE_EXACT_LIMIT = 1 << 15;
const HIST_BINS = 1 << 14;
const COARSE_STEPS = 128;
const FINE_STEPS = 64;

/**
 * Per-bin count, sum and sum of squares of x over [lo, hi]: enough to score any quantizer
 * whose levels are wider than a bin exactly (sum (x - v)^2 = sq - 2 v s + c v^2) and the
 * others closely.
 */
export interface BinSums {
  lo: number;
  width: number;
  count: Float64Array;
  sum: Float64Array;
  sq: Float64Array;
}

function histogramOf(x: Float32Array, lo: number, hi: number): BinSums {
  const width = (hi - lo) / HIST_BINS;
  const count = new Float64Array(HIST_BINS);
  const sum = new Float64Array(HIST_BINS);
  const sq = new Float64Array(HIST_BINS);
  const inv = 1 / width;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    let b = ((v - lo) * inv) | 0;
    if (b >= HIST_BINS) b = HIST_BINS - 1;
    count[b]!++;
    sum[b]! += v;
    sq[b]! += v * v;
  }
  return { lo, width, count, sum, sq };
}

function levelOf(v: number, scale: number, zeroPoint: number, qMin: number, qMax: number): number {
  return clamp(rint(f32(v / scale)) + zeroPoint, qMin, qMax);
}

/** Estimated sum of squared errors from the histogram (also scores activation histograms). */
export function histogramError(h: BinSums, scale: number, zeroPoint: number, p: IntParams): number {
  let total = 0;
  for (let b = 0; b < h.count.length; b++) {
    const c = h.count[b]!;
    if (c === 0) continue;
    const a = h.lo + b * h.width;
    const qa = levelOf(a, scale, zeroPoint, p.qMin, p.qMax);
    const qb = levelOf(a + h.width, scale, zeroPoint, p.qMin, p.qMax);
    if (qa === qb || h.width < scale) {
      // One level for the whole bin (exact), or a boundary inside it: assign by the bin's mean.
      const q = qa === qb ? qa : levelOf(h.sum[b]! / c, scale, zeroPoint, p.qMin, p.qMax);
      const v = f32((q - zeroPoint) * scale);
      total += Math.max(0, h.sq[b]! - 2 * v * h.sum[b]! + c * v * v);
    } else {
      // Many levels inside one bin: rounding noise is uniform over a level.
      total += (c * scale * scale) / 12;
    }
  }
  return total;
}

/**
 * The clip range that minimises the MSE of the dequantized values: a coarse grid over clip
 * ratios r in (0, 1] of the min-max range, then a finer grid around the best. Small inputs are
 * scored exactly; large ones on a 16384-bin histogram of counts (each bin's values taken as
 * spread around its centre), after which the best candidate and r = 1 (min-max itself)
 * are scored exactly on all of x in one pass, so the choice is never worse than min-max.
 * Exact scores and the histogram run on the kernels (kernels/mse.ts).
 */
export function mseRange(x: Float32Array, p: IntParams): Range {
  const large = x.length > MSE_EXACT_LIMIT;
  const span = large ? minmaxOf(x) : minmaxRange(x, 'asymmetric');
  const alpha = Math.max(Math.abs(span.lo), Math.abs(span.hi));
  const full = p.scheme === 'symmetric' ? { lo: -alpha, hi: alpha } : span;
  if (full.lo === full.hi) return full;
  const exact = (rs: number[]) => squaredErrors(x, { full, rs, p });
  let scoreAll: (rs: number[]) => number[] = exact;
  if (large) {
    const inv = Math.fround(HIST_BINS / (span.hi - span.lo));
    const width = (span.hi - span.lo) / HIST_BINS;
    if (Number.isFinite(inv) && Math.fround(width) > 0) {
      const h = histogram(x, span.lo, span.hi, HIST_BINS);
      scoreAll = (rs) => histogramErrors(h, { full, rs, p });
    } else {
      // A range so narrow (subnormal) that float32 bins cannot resolve it: float64 bins in JS.
      const h = histogramOf(x, span.lo, span.hi);
      scoreAll = (rs) => rs.map((r) => {
        const { scale, zeroPoint } = paramsFromRange(shrinkRange(full, r), p);
        return histogramError(h, scale, zeroPoint, p);
      });
    }
  }
  const coarse = Array.from({ length: COARSE_STEPS }, (_, i) => (i + 1) / COARSE_STEPS);
  const scored = zipScores(coarse, scoreAll(coarse));
  const best = scored.reduce((a, b) => (b.err < a.err ? b : a));
  const from = Math.max(best.r - 1 / COARSE_STEPS, 1 / (COARSE_STEPS * FINE_STEPS));
  const to = Math.min(best.r + 1 / COARSE_STEPS, 1);
  const fine = Array.from({ length: FINE_STEPS + 1 }, (_, k) => from + ((to - from) * k) / FINE_STEPS);
  scored.push(...zipScores(fine, scoreAll(fine)));
  const top = lowest(scored);
  if (!large) return shrinkRange(full, top.r);
  const finalists = [1, top.r];
  const chosen = zipScores(finalists, exact(finalists)).reduce((a, b) => (b.err < a.err ? b : a));
  return shrinkRange(full, chosen.r);
}

/** The lowest error; between equal ones, the wider clip (larger r). */
function lowest(scored: Array<{ r: number; err: number }>): { r: number; err: number } {
  let best = scored[0]!;
  for (const s of scored) if (s.err < best.err || (s.err === best.err && s.r > best.r)) best = s;
  return best;
}

function zipScores(rs: number[], errs: number[]): Array<{ r: number; err: number }> {
  return rs.map((r, i) => ({ r, err: errs[i]! }));
}

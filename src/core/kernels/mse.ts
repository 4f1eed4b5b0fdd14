import type { IntParams, Range } from '../calibrate.js';
import { CHUNK, kernelsFor, LAYOUT, stage, type Kernels } from './runtime.js';

// The expensive parts of the MSE clip search (calibrate.ts mseRange) on the kernels: the
// candidates' scales and zero points, their exact squared errors, and a histogram that
// scores candidates cheaply.

/**
 * The candidates of one search: clip ratio r of the range `full` (calibrate.ts shrinkRange),
 * made into a scale and zero point as paramsFromRange does, by the kernel.
 */
export interface Candidates {
  full: Range;
  rs: number[];
  p: IntParams;
}

/** Room for the accumulators of this many candidates scored in one pass (2 x f64x2 each). */
export const MAX_BATCH = CHUNK / 8;

/** Where the candidates go: their ratios (f64) in p[0], their 48-byte blocks over p[1] and p[2]. */
const RS = LAYOUT.p[0];
const CANDS = LAYOUT.p[1];
/** 8 bytes of scratch in the constant block's unused tail. */
const TMP = LAYOUT.k + 112;

function writeCandidates(k: Kernels, c: Candidates): void {
  if (c.rs.length > MAX_BATCH) throw new RangeError(`at most ${MAX_BATCH} candidates per pass, got ${c.rs.length}`);
  k.f64.set(c.rs, RS >> 3);
  k.mse.candidates(RS, c.rs.length, c.full.lo, c.full.hi, c.p.scheme === 'symmetric' ? 1 : 0, c.p.qMin, c.p.qMax, CANDS, TMP);
}

/**
 * Sum of squared dequantization errors of x under each candidate, in one pass over x (each
 * staged chunk is scored by every candidate while it is in cache). Terms are the reference's
 * (sumSquaredError); the order of the float64 sum differs.
 */
export function squaredErrors(x: Float32Array, c: Candidates): number[] {
  const k = kernelsFor(x);
  writeCandidates(k, c);
  const acc = LAYOUT.p[4];
  k.f64.fill(0, acc >> 3, (acc >> 3) + 4 * c.rs.length);
  for (let start = 0; start < x.length; start += CHUNK) {
    const count = Math.min(CHUNK, x.length - start);
    k.mse.sseMany(stage(k, x, start, count, LAYOUT.x), count, CANDS, c.rs.length, acc);
  }
  return c.rs.map((_, i) => {
    const d = (acc >> 3) + 4 * i;
    return k.f64[d]! + k.f64[d + 1]! + (k.f64[d + 2]! + k.f64[d + 3]!);
  });
}

/** A histogram of x over [lo, hi] held in the kernels' memory, valid until the next kernel call. */
export interface Histogram {
  /** The kernels whose memory holds the counts. */
  kernels: Kernels;
  lo: number;
  width: number;
  bins: number;
}

/** Counts of x in `bins` equal bins over [lo, hi] (bins a multiple of 4, at most CHUNK). */
export function histogram(x: Float32Array, lo: number, hi: number, bins: number): Histogram {
  const k = kernelsFor(x);
  const counts = LAYOUT.p[3];
  k.i32.fill(0, counts >> 2, (counts >> 2) + bins);
  const width = (hi - lo) / bins;
  const inv = Math.fround(bins / (hi - lo));
  for (let start = 0; start < x.length; start += CHUNK) {
    const count = Math.min(CHUNK, x.length - start);
    k.mse.hist(stage(k, x, start, count, LAYOUT.x), count, lo, inv, bins, counts);
  }
  return { kernels: k, lo, width, bins };
}

/** Estimated squared error of each candidate from the histogram just built. */
export function histogramErrors(h: Histogram, c: Candidates): number[] {
  const k = h.kernels;
  writeCandidates(k, c);
  return c.rs.map((_, i) => k.mse.hscore(LAYOUT.p[3], h.bins, h.lo, h.width, CANDS + 48 * i));
}

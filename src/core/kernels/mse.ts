import { CHUNK, kernelsFor, LAYOUT, stage, type Kernels } from './runtime.js';

// The expensive parts of the MSE clip search (calibrate.ts mseRange) on the kernels: exact
// squared errors of a batch of candidates, and a histogram that scores candidates cheaply.

export interface Candidate {
  scale: number;
  zeroPoint: number;
}

/** Room for the accumulators of this many candidates scored in one pass (2 x f64x2 each). */
export const MAX_BATCH = CHUNK / 8;

/** A candidate's constant block (mse.wat) at byte offset `at`. */
function setCandidate(k: Kernels, c: Candidate, qMin: number, qMax: number, at: number = LAYOUT.k): void {
  // Element stores, not three fill()s: this runs for every candidate of every small group.
  const f = k.f32;
  const w = at >> 2;
  const lo = qMin - c.zeroPoint;
  const hi = qMax - c.zeroPoint;
  f[w] = f[w + 1] = f[w + 2] = f[w + 3] = c.scale;
  f[w + 4] = f[w + 5] = f[w + 6] = f[w + 7] = lo;
  f[w + 8] = f[w + 9] = f[w + 10] = f[w + 11] = hi;
}

/** Where squaredErrors puts its candidates' blocks: 48 bytes each, over p[1] and p[2]. */
const CANDS = LAYOUT.p[1];

/**
 * Sum of squared dequantization errors of x under each candidate, in one pass over x (each
 * staged chunk is scored by every candidate while it is in cache). Terms are the reference's
 * (sumSquaredError); the order of the float64 sum differs.
 */
export function squaredErrors(x: Float32Array, candidates: Candidate[], qMin: number, qMax: number): number[] {
  if (candidates.length > MAX_BATCH) throw new RangeError(`at most ${MAX_BATCH} candidates per pass, got ${candidates.length}`);
  const k = kernelsFor(x);
  const acc = LAYOUT.p[4];
  k.f64.fill(0, acc >> 3, (acc >> 3) + 4 * candidates.length);
  candidates.forEach((c, i) => setCandidate(k, c, qMin, qMax, CANDS + 48 * i));
  for (let start = 0; start < x.length; start += CHUNK) {
    const count = Math.min(CHUNK, x.length - start);
    k.mse.sseMany(stage(k, x, start, count, LAYOUT.x), count, CANDS, candidates.length, acc);
  }
  return candidates.map((_, i) => {
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
export function histogramErrors(h: Histogram, candidates: Candidate[], qMin: number, qMax: number): number[] {
  const k = h.kernels;
  return candidates.map((c) => {
    setCandidate(k, c, qMin, qMax);
    return k.mse.hscore(LAYOUT.p[3], h.bins, h.lo, h.width, LAYOUT.k);
  });
}

import { CHUNK, kernelsFor, LAYOUT, stage, type Kernels } from './runtime.js';

// The expensive parts of the MSE clip search (calibrate.ts mseRange) on the kernels: exact
// squared errors of a batch of candidates, and a histogram that scores candidates cheaply.

export interface Candidate {
  scale: number;
  zeroPoint: number;
}

/** Room for the accumulators of this many candidates scored in one pass (2 x f64x2 each). */
export const MAX_BATCH = CHUNK / 8;

function setCandidate(k: Kernels, c: Candidate, qMin: number, qMax: number): void {
  const w = LAYOUT.k >> 2;
  k.f32.fill(c.scale, w, w + 4);
  k.f32.fill(qMin - c.zeroPoint, w + 4, w + 8);
  k.f32.fill(qMax - c.zeroPoint, w + 8, w + 12);
}

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
  for (let start = 0; start < x.length; start += CHUNK) {
    const count = Math.min(CHUNK, x.length - start);
    const xa = stage(k, x, start, count, LAYOUT.x);
    candidates.forEach((c, i) => {
      setCandidate(k, c, qMin, qMax);
      k.mse.sse(xa, count, LAYOUT.k, acc + 32 * i);
    });
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

import type { ErrorSums } from './quantize.js';

export interface ErrorReport {
  max_error: number;
  mean_error: number;
  mse: number;
  snr_db: number | null;
  clipped: number;
  clipped_fraction: number;
  /** NaN and ±Infinity inputs (given scales only), left out of the other figures. */
  non_finite?: number;
}

export function reportFromSums(s: ErrorSums): ErrorReport {
  const nonFinite = s.nonFinite ?? 0;
  // An all-NaN tensor has no finite element to measure: zero error rather than 0 / 0.
  const per = s.count > 0 || nonFinite === 0 ? s.count : 1;
  const meanX2 = s.sumX2 / per;
  const mse = s.sumSq / per;
  const report: ErrorReport = {
    max_error: s.maxError,
    mean_error: s.sumAbs / per,
    mse,
    snr_db: meanX2 === 0 ? null : 10 * Math.log10(meanX2 / (mse + 1e-10)),
    clipped: s.clipped,
    clipped_fraction: s.clipped / (s.count + nonFinite),
  };
  if (nonFinite > 0) report.non_finite = nonFinite;
  return report;
}

/** Error sums of x against a reconstruction, in float64 (clipping is not known here). */
export function errorSums(x: ArrayLike<number>, xHat: ArrayLike<number>, clipped = 0): ErrorSums {
  const s: ErrorSums = { count: x.length, clipped, maxError: 0, sumAbs: 0, sumSq: 0, sumX2: 0 };
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    const e = Math.abs(v - xHat[i]!);
    if (e > s.maxError) s.maxError = e;
    s.sumAbs += e;
    s.sumSq += e * e;
    s.sumX2 += v * v;
  }
  return s;
}

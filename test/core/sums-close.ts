import type { ErrorReport } from '../../src/core/metrics.js';
import type { ErrorSums } from '../../src/core/quantize.js';

// The kernels take their error sums in float32 lanes flushed to float64 in blocks
// (quantize.wat $spanr), the reference in float64 in element order: the kernels promise
// 1e-6 relative (their bound is 6.6e-7 plus what products below float32's normal range may
// add, which quantize.ts keeps under 1e-7). Any two float64 orders of n non-negative terms
// agree to n * 2^-52, which covers the reference's own rounding for any n used here. Counts
// and max_error have no rounding and must be equal.

/** What the kernels promise for each sum. */
export const KERNEL_SUM_REL = 1e-6;

export function sumTolerance(n: number): number {
  return KERNEL_SUM_REL + Math.max(1, n) * 2 ** -52;
}

function closeRel(a: number, b: number, rel: number): boolean {
  return a === b || Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b));
}

/** The fields that differ, as readable lines (empty when the sums agree). */
export function sumsDiffer(a: ErrorSums, b: ErrorSums): string[] {
  const rel = sumTolerance(a.count);
  const out: string[] = [];
  for (const key of ['count', 'clipped', 'maxError'] as const) if (a[key] !== b[key]) out.push(`${key} ${a[key]} !== ${b[key]}`);
  for (const key of ['sumAbs', 'sumSq', 'sumX2'] as const) if (!closeRel(a[key], b[key], rel)) out.push(`${key} ${a[key]} vs ${b[key]}`);
  return out;
}

/** The same for the reports built from such sums (snr_db is compared in dB). */
export function reportsDiffer(a: ErrorReport, b: ErrorReport, n: number): string[] {
  const rel = sumTolerance(n);
  const out: string[] = [];
  for (const key of ['max_error', 'clipped', 'clipped_fraction'] as const) if (a[key] !== b[key]) out.push(`${key} ${a[key]} !== ${b[key]}`);
  for (const key of ['mean_error', 'mse'] as const) if (!closeRel(a[key], b[key], rel)) out.push(`${key} ${a[key]} vs ${b[key]}`);
  // snr_db = 10 log10(meanX2 / (mse + 1e-10)): both ratios move by at most rel.
  const snrOk = a.snr_db === null || b.snr_db === null ? a.snr_db === b.snr_db : Math.abs(a.snr_db - b.snr_db) <= 10 * Math.log10(1 + 2 * rel) + 1e-12;
  if (!snrOk) out.push(`snr_db ${a.snr_db} vs ${b.snr_db}`);
  return out;
}

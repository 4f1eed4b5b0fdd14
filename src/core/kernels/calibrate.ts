import type { ParamPlan } from '../quantize.js';
import { CHUNK, kernelsFor, LAYOUT, stage, type Kernels } from './runtime.js';
import { copyRowsParams, forEachRowsPiece, forEachRunsCall, kernelShape, rowsParam } from './segments.js';

/**
 * The smallest and largest value of each parameter's elements, as the reference's
 * minmaxRange finds them (NaN skipped; +Infinity / -Infinity where there is no number).
 */
export function minmaxRanges(x: Float32Array, plan: ParamPlan): { lo: Float32Array; hi: Float32Array } {
  const k = kernelsFor(x);
  const lo = new Float32Array(plan.count).fill(Infinity);
  const hi = new Float32Array(plan.count).fill(-Infinity);
  const shape = kernelShape(plan);
  const X = LAYOUT.x;
  const [pLo, pHi] = LAYOUT.p;
  const loView = k.f32.subarray(pLo >> 2, (pLo >> 2) + CHUNK);
  const hiView = k.f32.subarray(pHi >> 2, (pHi >> 2) + CHUNK);
  if (shape.form === 'runs') {
    forEachRunsCall(shape, CHUNK, (c) => {
      const xa = stage(k, x, c.start, c.count, X);
      loView.set(lo.subarray(c.p0, c.p0 + c.params));
      hiView.set(hi.subarray(c.p0, c.p0 + c.params));
      k.calibrate.runs(xa, c.rows, c.runs, c.runLen, c.lastLen, pLo, pHi, c.prow);
      lo.set(loView.subarray(0, c.params), c.p0);
      hi.set(hiView.subarray(0, c.params), c.p0);
    });
    return { lo, hi };
  }
  forEachRowsPiece(shape, CHUNK, (piece, calls) => {
    const n = piece.c1 - piece.c0;
    copyRowsParams(shape, piece.block, piece.c0, piece.c1, lo, loView);
    copyRowsParams(shape, piece.block, piece.c0, piece.c1, hi, hiView);
    calls((c) => {
      k.calibrate.rows(stage(k, x, c.start, c.rows * c.len, X), c.rows, c.len, pLo, pHi);
    });
    // Columns that share a parameter (per channel with a short inner extent) fold together.
    for (let c = 0; c < n; c++) {
      const p = rowsParam(shape, piece.block, piece.c0 + c);
      if (loView[c]! < lo[p]!) lo[p] = loView[c]!;
      if (hiView[c]! > hi[p]!) hi[p] = hiView[c]!;
    }
  });
  return { lo, hi };
}

function countWith(x: Float32Array, fn: (k: Kernels) => (at: number, n: number) => number): number {
  let n = 0;
  const k = kernelsFor(x);
  const count = fn(k);
  for (let start = 0; start < x.length; start += CHUNK) {
    const len = Math.min(CHUNK, x.length - start);
    n += count(stage(k, x, start, len, LAYOUT.x), len);
  }
  return n;
}

/** How many values of x are NaN. */
export function countNaN(x: Float32Array): number {
  return countWith(x, (k) => k.calibrate.nans);
}

/** How many values of x are NaN or ±Infinity. */
export function countNonFinite(x: Float32Array): number {
  return countWith(x, (k) => k.calibrate.nonfinite);
}

/** Min and max of all of x (minmaxRange's asymmetric range), in one kernel pass. */
export function minmaxOf(x: Float32Array): { lo: number; hi: number } {
  const k = kernelsFor(x);
  const [pLo, pHi] = LAYOUT.p;
  k.f32[pLo >> 2] = Infinity;
  k.f32[pHi >> 2] = -Infinity;
  for (let start = 0; start < x.length; start += CHUNK) {
    const count = Math.min(CHUNK, x.length - start);
    k.calibrate.runs(stage(k, x, start, count, LAYOUT.x), 1, 1, count, count, pLo, pHi, 0);
  }
  return { lo: k.f32[pLo >> 2]!, hi: k.f32[pHi >> 2]! };
}

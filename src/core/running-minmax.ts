/**
 * The extremes of a stream of arrays, reduced as each arrives (onnxruntime's MinMax
 * calibrator takes nanmin/nanmax over its batches: NaN is skipped here the same way, since
 * `v < lo` is false for NaN). `counted` counts the values that are not NaN (±Infinity counts, as
 * it does in numpy's nanmin).
 */
export class RunningMinMax {
  min = Infinity;
  max = -Infinity;
  counted = 0;

  add(x: ArrayLike<number>): void {
    let lo = this.min;
    let hi = this.max;
    let n = 0;
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
      if (v === v) n++;
    }
    this.min = lo;
    this.max = hi;
    this.counted += n;
  }

  /** A sample already reduced elsewhere (onnxruntime's ReduceMin/ReduceMax): its extremes and size. */
  addExtremes(min: number, max: number, size: number): void {
    if (size === 0) return;
    if (min < this.min) this.min = min;
    if (max > this.max) this.max = max;
    this.counted += size;
  }

  /** [min, max], or [-m, m] with m = max(|min|, |max|) when symmetric; [0, 0] before any value. */
  range(symmetric: boolean): { lo: number; hi: number } {
    if (this.counted === 0) return { lo: 0, hi: 0 };
    if (!symmetric) return { lo: this.min, hi: this.max };
    const m = Math.max(Math.abs(this.min), Math.abs(this.max));
    return { lo: -m, hi: m };
  }
}

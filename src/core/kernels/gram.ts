import { LinalgSpace, pad8 } from './linalg.js';

// xᵀx on linalg.wat's syrk: rows are packed GRAM_ROWS at a time into 8-column panels, each
// 4×8 tile's float32 products summed in float32 over the chunk (in row order), and each
// chunk's sums added into a float64 accumulator in the kernel's memory (only the upper 8×8
// blocks: the product is symmetric). Against the float64 reference each element is off by at
// most (GRAM_ROWS + 1)·2⁻²⁴·Σ_r |x_ri·x_rj| (a recursive float32 sum of GRAM_ROWS rounded
// products, Higham's γ_n bound) plus float64 rounding: test/core/kernels/linalg.test.ts checks it.

export const GRAM_ROWS = 512;

/** Bytes of the kernels' memory a Gram accumulator over k columns takes (the float64 sums and one packed chunk). */
export function gramBytes(k: number): number {
  const kp = pad8(k);
  return 8 * kp * kp + 4 * kp * (GRAM_ROWS + 2) + 1024;
}

/**
 * Σ xᵀx over rows given in any number of pieces, summed in the kernel's memory: the float64
 * result is read out once (addInto), so streaming many samples costs no pass over k² per sample.
 */
export class GramAccumulator {
  readonly k: number;
  private readonly kp: number;
  private readonly space: LinalgSpace;
  private readonly panel: Float32Array;
  private readonly panelAt: number;
  private readonly sums: Float64Array;
  private readonly sumsAt: number;
  private empty = true;

  constructor(k: number) {
    this.k = k;
    this.kp = pad8(k);
    this.space = new LinalgSpace(gramBytes(k));
    const sums = this.space.matrix(this.kp, 2 * this.kp);
    this.sumsAt = sums.at;
    this.sums = new Float64Array(sums.data.buffer, sums.at, this.kp * this.kp);
    const panel = this.space.matrix(GRAM_ROWS + 2, this.kp);
    this.panelAt = panel.at;
    this.panel = panel.data;
  }

  /** Adds xᵀx for the first n rows of x (n × k row-major). */
  add(x: Float32Array, n: number): void {
    const { k, kp, panel } = this;
    for (let r0 = 0; r0 < n; r0 += GRAM_ROWS) {
      const count = Math.min(GRAM_ROWS, n - r0);
      // The kernel takes two rows a step: an odd chunk gets a row of zeros (it adds nothing).
      const kc = count + (count & 1);
      for (let t = 0; t < count; t++) {
        const row = (r0 + t) * k;
        for (let j = 0; j < k; j++) panel[((j >> 3) * kc + t) * 8 + (j & 7)] = x[row + j]!;
        // Padding columns are written every time: the layout (kc) changes between chunks.
        for (let j = k; j < kp; j++) panel[((j >> 3) * kc + t) * 8 + (j & 7)] = 0;
      }
      if (kc > count) for (let q = 0; q < kp >> 3; q++) panel.fill(0, (q * kc + count) * 8, (q * kc + count) * 8 + 8);
      this.space.syrk(this.panelAt, kc, kp >> 3, this.sumsAt, 8 * kp, this.empty ? 2 : 0);
      this.empty = false;
    }
  }

  /** acc (k×k, symmetric) += the sums so far, then starts again from zero. */
  addInto(acc: Float64Array): void {
    if (this.empty) return;
    const { k, kp, sums } = this;
    for (let i = 0; i < k; i++) {
      const at = i * k;
      const st = i * kp;
      for (let j = i; j < k; j++) acc[at + j]! += sums[st + j]!;
    }
    // The lower triangle from the upper (acc was symmetric, and the same sums went into both).
    for (let i = 1; i < k; i++) for (let j = 0; j < i; j++) acc[i * k + j] = acc[j * k + i]!;
    this.empty = true;
  }
}

/**
 * acc (k×k, symmetric) += xᵀx for the first n rows of x (n × k row-major). The accumulator
 * (8·k² bytes) is not kept between calls: a worker would hold it for good after one wide request.
 */
export function gramKernel(acc: Float64Array, x: Float32Array, n: number, k: number): void {
  if (n === 0) return;
  const g = new GramAccumulator(k);
  g.add(x, n);
  g.addInto(acc);
}

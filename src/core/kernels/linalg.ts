import { privateKernel } from './runtime.js';

// Float32 linear algebra on linalg.wat's matrix product, in a WebAssembly memory of its own
// sized for one problem (the kernels' fixed 1.8 MiB staging memory cannot hold a Hessian).
// The product does the O(n³) work; the O(n²·64) panel steps around it are plain loops in
// float64 arithmetic on the float32 values.

interface LinalgExports {
  gemm(c: number, a: number, b: number, m: number, n: number, kk: number, ldc: number, sai: number, sat: number, ldb: number, mode: number, upper: number): void;
  syrk(p: number, kc: number, nb: number, acc: number, ldc: number, mode: number): void;
  gptqblock(w: number, ldw: number, e: number, lde: number, u: number, ldu: number, rows: number, count: number, w1: number, colp: number, pstride: number, scales: number, zps: number, codes: number, codecol: number, ldcodes: number, qmin: number, qmax: number): void;
}

export const GEMM_ADD = 0;
export const GEMM_SUB = 1;
export const GEMM_SET = 2;

const PAGE = 65536;
/** A wasm32 memory's limit, less a page: no problem may need more. */
export const MAX_LINALG_BYTES = 65535 * PAGE;

export const pad4 = (n: number) => Math.ceil(n / 4) * 4;
export const pad8 = (n: number) => Math.ceil(n / 8) * 8;

/** A row-major float32 matrix in a LinalgSpace: element (i, j) at data[i·ld + j]. */
export interface F32Matrix {
  data: Float32Array;
  ld: number;
  /** Its byte address in the space's memory. */
  at: number;
}

/**
 * One problem's memory: its size fixed up front (growing would detach the views on it), then
 * handed out by bumping; it goes to the garbage collector with the last view on it.
 */
export class LinalgSpace {
  readonly buffer: ArrayBuffer;
  private readonly k: LinalgExports;
  private top = 64;

  constructor(bytes: number) {
    if (!(bytes <= MAX_LINALG_BYTES)) throw new RangeError(`a linear algebra problem of ${bytes} bytes is past the 4 GiB of a wasm32 memory`);
    const pages = Math.ceil((bytes + 64 * 64) / PAGE);
    const { memory, exports } = privateKernel<LinalgExports>('linalg', pages);
    this.buffer = memory.buffer as ArrayBuffer;
    this.k = exports;
  }

  /** rows × ld float32 values, zeroed (a fresh memory is zero; nothing is handed out twice). */
  matrix(rows: number, ld: number): F32Matrix {
    const at = this.top;
    const bytes = rows * ld * 4;
    // + 64: the product may read a vector past a row's end.
    if (at + bytes + 64 > this.buffer.byteLength) throw new RangeError(`linalg space of ${this.buffer.byteLength} bytes is full`);
    this.top = at + Math.ceil(bytes / 64) * 64;
    return { data: new Float32Array(this.buffer, at, rows * ld), ld, at };
  }

  /** A PANEL × (pad8(np) + 8) scratch matrix for the blocked factorizations. */
  panel(np: number): F32Matrix {
    return this.matrix(PANEL, pad8(np) + 8);
  }

  /** Where the next allocation goes: give it to release to hand everything after it out again. */
  mark(): number {
    return this.top;
  }

  release(mark: number): void {
    new Uint8Array(this.buffer, mark, this.top - mark).fill(0);
    this.top = mark;
  }

  /**
   * C[c0..] (m×n) mode= A·B, where A(i, t) = a.data[a0 + i·ai + t·at] (element
   * strides) and B(t, j) = b[b0 + t·ldb + j]. m a multiple of 4 and n of 8, or padded so.
   */
  gemm(c: F32Matrix, c0: number, a: F32Matrix, a0: number, ai: number, at: number, b: F32Matrix, b0: number, m: number, n: number, kk: number, mode: number, upper = false): void {
    if (m <= 0 || n <= 0) return;
    this.k.gemm(c.at + 4 * c0, a.at + 4 * a0, b.at + 4 * b0, pad4(m), pad8(n), kk, 4 * c.ld, 4 * ai, 4 * at, 4 * b.ld, mode, upper ? 1 : 0);
  }

  /**
   * The float64 sums at byte address acc (row stride ldc bytes) += (mode GEMM_ADD) or =
   * (GEMM_SET) XᵀX's upper 8×8 blocks for the kc rows (kc even) packed by 8-column panels at
   * byte address p (nb panels of kc·8 floats: panel q holds columns 8q..8q+7 row by row).
   */
  syrk(p: number, kc: number, nb: number, acc: number, ldc: number, mode: number): void {
    if (kc <= 0 || nb <= 0) return;
    this.k.syrk(p, kc, nb, acc, ldc, mode);
  }

  /**
   * GPTQ's column loop over one block for every row (linalg.wat's gptqblock; methods/gptq-steps.ts
   * runBlock is the same in TypeScript). Byte addresses and strides; w1 is count float64 of scratch.
   */
  gptqBlock(w: number, ldw: number, e: number, lde: number, u: number, ldu: number, rows: number, count: number, w1: number, colp: number, pstride: number, scales: number, zps: number, codes: number, codecol: number, ldcodes: number, qMin: number, qMax: number): void {
    this.k.gptqblock(w, ldw, e, lde, u, ldu, rows, count, w1, colp, pstride, scales, zps, codes, codecol, ldcodes, qMin, qMax);
  }
}

/** Bytes factorInverse needs for an n×n problem (beside what the caller allocates). */
export function factorBytes(n: number): number {
  const np = pad8(n);
  const ld = np + 8;
  return 4 * (2 * np * ld + 2 * PANEL * ld) + 64 * 4;
}

/** Panel width of the blocked factorizations. */
const PANEL = 64;

/**
 * U, upper triangular with (H + λI)⁻¹ = UᵀU, in float32 (n × ld, ld = pad8(n) + 8), or null
 * when a pivot is not positive. GPTQ's reference takes cholesky(cholesky_inverse(cholesky(H)))
 * upper; the same U (the factor is unique) costs a third as much from one reversal:
 * with J the exchange matrix and L' = chol(J·H·J), H = R·Rᵀ for R = J·L'·J (upper), so
 * H⁻¹ = R⁻ᵀ·R⁻¹ and U = R⁻¹ = J·L'⁻¹·J: one Cholesky and one triangular inverse.
 */
export function factorInverse(space: LinalgSpace, h: Float64Array, n: number, lambda: number): F32Matrix | null {
  const np = pad8(n);
  const ld = np + 8;
  const m = space.matrix(np, ld);
  const md = m.data;
  // M = J·H·J + λI; the padding is the identity, so its factors are too.
  for (let i = 0; i < n; i++) {
    const from = (n - 1 - i) * n;
    for (let j = 0; j <= i; j++) md[i * ld + j] = h[from + n - 1 - j]!;
    md[i * ld + i]! += lambda;
  }
  for (let i = n; i < np; i++) md[i * ld + i] = 1;
  if (!choleskyInPlace(space, m, np)) return null;
  const x = space.matrix(np, ld);
  invertLowerInto(space, m, x, np);
  // U (i, j) = X(n−1−i, n−1−j), written over M (no longer needed).
  const xd = x.data;
  md.fill(0);
  for (let i = 0; i < n; i++) {
    const from = (n - 1 - i) * ld + n - 1;
    for (let j = i; j < n; j++) md[i * ld + j] = xd[from - j]!;
  }
  return m;
}

/** Lower Cholesky of the np×np M in place (its lower triangle), right-looking by panels of 64. */
function choleskyInPlace(space: LinalgSpace, m: F32Matrix, np: number): boolean {
  const md = m.data;
  const ld = m.ld;
  const t = space.panel(np);
  for (let k0 = 0; k0 < np; k0 += PANEL) {
    const k1 = Math.min(k0 + PANEL, np);
    // The diagonal block.
    for (let j = k0; j < k1; j++) {
      let d = md[j * ld + j]!;
      for (let q = k0; q < j; q++) d -= md[j * ld + q]! * md[j * ld + q]!;
      if (!(d > 0) || !Number.isFinite(d)) return false;
      const ljj = Math.sqrt(d);
      md[j * ld + j] = ljj;
      for (let i = j + 1; i < k1; i++) {
        let s = md[i * ld + j]!;
        for (let q = k0; q < j; q++) s -= md[i * ld + q]! * md[j * ld + q]!;
        md[i * ld + j] = s / ljj;
      }
    }
    if (k1 >= np) break;
    // The panel below it: L21 = A21·L11⁻ᵀ, row by row; and its transpose for the product.
    const kb = k1 - k0;
    const row = new Float64Array(kb);
    for (let i = k1; i < np; i++) {
      for (let j = 0; j < kb; j++) {
        let s = md[i * ld + k0 + j]!;
        for (let q = 0; q < j; q++) s -= row[q]! * md[(k0 + j) * ld + k0 + q]!;
        row[j] = s / md[(k0 + j) * ld + k0 + j]!;
      }
      for (let j = 0; j < kb; j++) {
        md[i * ld + k0 + j] = row[j]!;
        t.data[j * t.ld + i] = md[i * ld + k0 + j]!;
      }
    }
    // A22 −= L21·L21ᵀ, the lower triangle by row blocks of 64 (columns up to each block's end).
    for (let ib = k1; ib < np; ib += PANEL) {
      const ie = Math.min(ib + PANEL, np);
      space.gemm(m, ib * ld + k1, m, ib * ld + k0, ld, 1, t, k1, ie - ib, ie - k1, kb, GEMM_SUB);
    }
  }
  return true;
}

/**
 * X = L⁻¹ for the lower L (M's lower triangle), by row blocks: X[I, 0:i0] = −L_II⁻¹·(L[I, 0:i0]·X[0:i0, 0:i0]),
 * the product restricted to X's nonzero (lower) part one column block at a time. X starts zeroed.
 */
function invertLowerInto(space: LinalgSpace, l: F32Matrix, x: F32Matrix, np: number): void {
  const ld = l.ld;
  const ldd = l.data;
  const xd = x.data;
  const s = space.panel(np);
  const sd = s.data;
  const col = new Float64Array(PANEL);
  for (let i0 = 0; i0 < np; i0 += PANEL) {
    const i1 = Math.min(i0 + PANEL, np);
    const kb = i1 - i0;
    // The diagonal block's inverse, by forward substitution.
    for (let j = 0; j < kb; j++) {
      xd[(i0 + j) * ld + i0 + j] = 1 / ldd[(i0 + j) * ld + i0 + j]!;
      for (let i = j + 1; i < kb; i++) {
        let acc = 0;
        for (let q = j; q < i; q++) acc += ldd[(i0 + i) * ld + i0 + q]! * xd[(i0 + q) * ld + i0 + j]!;
        xd[(i0 + i) * ld + i0 + j] = -acc / ldd[(i0 + i) * ld + i0 + i]!;
      }
    }
    if (i0 === 0) continue;
    // S = L[I, 0:i0]·X[0:i0, 0:i0]: column block jb needs rows t ≥ jb of X only.
    for (let jb = 0; jb < i0; jb += PANEL) {
      const je = Math.min(jb + PANEL, i0);
      space.gemm(s, jb, l, i0 * ld + jb, ld, 1, x, jb * ld + jb, kb, je - jb, i0 - jb, 2);
    }
    // X[I, j] = −X_II·S[:, j].
    for (let j = 0; j < i0; j++) {
      for (let i = 0; i < kb; i++) col[i] = sd[i * s.ld + j]!;
      for (let i = 0; i < kb; i++) {
        let acc = 0;
        for (let q = 0; q <= i; q++) acc += xd[(i0 + i) * ld + i0 + q]! * col[q]!;
        xd[(i0 + i) * ld + j] = -acc;
      }
    }
  }
}

/**
 * tr(D·H·Dᵀ) for each rows×k matrix D (row-major float32), H k×k float64: each D·H on the
 * product in float32, its elementwise product with D summed in float64. The output error
 * ‖X·Dᵀ‖² that H = XᵀX stands for, without the activations.
 */
export function quadraticForms(ds: readonly Float32Array[], rows: number, k: number, h: Float64Array): number[] {
  const ld = pad8(k) + 8;
  const space = new LinalgSpace(4 * (ld * k + 2 * pad4(rows) * ld) + 1024);
  const hm = space.matrix(k, ld);
  for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) hm.data[i * ld + j] = h[i * k + j]!;
  const dm = space.matrix(pad4(rows), ld);
  const cm = space.matrix(pad4(rows), ld);
  return ds.map((d) => {
    for (let r = 0; r < rows; r++) dm.data.set(d.subarray(r * k, (r + 1) * k), r * ld);
    space.gemm(cm, 0, dm, 0, ld, 1, hm, 0, rows, k, k, GEMM_SET);
    let s = 0;
    for (let r = 0; r < rows; r++) for (let j = 0; j < k; j++) s += cm.data[r * ld + j]! * dm.data[r * ld + j]!;
    return s;
  });
}

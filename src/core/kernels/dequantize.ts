import type { QuantParams } from '../quantize.js';
import { FLT_MAX } from '../round.js';
import { arenaOf, CHUNK, kernelsFor, LAYOUT, stage } from './runtime.js';
import { copyRowsParams, forEachRowsPiece, forEachRunsCall, kernelShape } from './segments.js';

/** The integer containers the kernel reads; anything else goes through the reference loop. */
export type KernelInts = Int8Array | Uint8Array | Int16Array | Uint16Array;

export function isKernelInts(q: ArrayLike<number>): q is KernelInts {
  return q instanceof Int8Array || q instanceof Uint8Array || q instanceof Int16Array || q instanceof Uint16Array;
}

/** |q - zero_point| is below this for every container (16 bits at most). */
const MAX_STEPS = 65536;

/** Whether some (q - zero_point) * scale could pass FLT_MAX (or a scale is not a number). */
function mayOverflow(scale: Float32Array): boolean {
  const limit = FLT_MAX / 2 / MAX_STEPS;
  for (let i = 0; i < scale.length; i++) if (!(Math.abs(scale[i]!) <= limit)) return true; // NaN too
  return false;
}

/** x_hat = (q - zero_point) * scale into out, with dequantize.wat. */
export function dequantizeKernel(q: KernelInts, params: Pick<QuantParams, 'plan' | 'scale' | 'zeroPoint'>, out: Float32Array): void {
  const qBytes = new Uint8Array(q.buffer, q.byteOffset, q.byteLength);
  // The output is four times the input at 8 bits: when it lives in an arena, the kernel
  // writes it there directly and the integers are the ones staged.
  const k = kernelsFor(arenaOf(out) ? out : qBytes);
  const direct = out.buffer === k.buffer;
  const width = q.BYTES_PER_ELEMENT;
  const unsigned = q instanceof Uint8Array || q instanceof Uint16Array;
  const bias = unsigned ? (width === 1 ? 128 : 32768) : 0;
  const xor = unsigned ? (width === 1 ? 0x80808080 | 0 : 0x80008000 | 0) : 0;
  const kw = LAYOUT.kd >> 2;
  k.f32.fill(FLT_MAX, kw + 8, kw + 12);
  k.f32.fill(-FLT_MAX, kw + 12, kw + 16);
  k.i32.fill(xor, kw + 16, kw + 20);
  k.i32[kw + 20] = width;
  k.i32[kw + 21] = bias;
  k.i32[kw + 22] = mayOverflow(params.scale) ? 1 : 0;
  const { x: X, q: Q, kd: KD } = LAYOUT;
  const [P0, P1] = LAYOUT.p;
  const run = (start: number, count: number, call: (xa: number, qa: number) => void) => {
    const qa = stage(k, qBytes, start * width, count * width, Q);
    if (direct) {
      call(out.byteOffset + start * 4, qa);
      return;
    }
    call(X, qa);
    out.set(k.f32.subarray(X >> 2, (X >> 2) + count), start);
  };
  const shape = kernelShape(params.plan);
  if (shape.form === 'runs') {
    forEachRunsCall(shape, CHUNK, (c) => {
      k.f32.set(params.scale.subarray(c.p0, c.p0 + c.params), P0 >> 2);
      k.i32.set(params.zeroPoint.subarray(c.p0, c.p0 + c.params), P1 >> 2);
      run(c.start, c.count, (xa, qa) => k.dequantize.runs(xa, qa, c.rows, c.runs, c.runLen, c.lastLen, P0, P1, c.prow, KD));
    });
    return;
  }
  const scaleView = k.f32.subarray(P0 >> 2, (P0 >> 2) + CHUNK);
  const zpView = k.i32.subarray(P1 >> 2, (P1 >> 2) + CHUNK);
  const zpfView = k.f32.subarray(P1 >> 2, (P1 >> 2) + CHUNK);
  forEachRowsPiece(shape, CHUNK, (piece, calls) => {
    const n = piece.c1 - piece.c0;
    copyRowsParams(shape, piece.block, piece.c0, piece.c1, params.scale, scaleView);
    copyRowsParams(shape, piece.block, piece.c0, piece.c1, params.zeroPoint, zpView);
    // The kernel wants float32(zp - bias) per column, in place of the integers.
    for (let c = 0; c < n; c++) zpfView[c] = zpView[c]! - bias;
    calls((c) => run(c.start, c.rows * c.len, (xa, qa) => k.dequantize.rows(xa, qa, c.rows, c.len, P0, P1, KD)));
  });
}

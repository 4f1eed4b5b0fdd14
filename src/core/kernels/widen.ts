import { arenaKernel, arenaOf } from './runtime.js';

// float16 / bfloat16 → float32 with widen.wat where both arrays live in one kernel arena (the
// model path's weight scratch reads a float16 weight's bytes beside its float area); the
// caller converts whatever this does not (returns the count done).

interface WidenExports {
  halves(src: number, dst: number, n: number): void;
  bfloats(src: number, dst: number, n: number): void;
}

/** Widens the first values of h into out (same arena only) in whole steps of 8; returns how many. */
export function widenKernel(h: Uint16Array, out: Float32Array, bfloat16: boolean): number {
  const memory = arenaOf(h);
  if (!memory || out.buffer !== h.buffer || out.length < h.length) return 0;
  const k = arenaKernel<WidenExports>('widen', memory);
  const n = h.length - (h.length % 8);
  (bfloat16 ? k.bfloats : k.halves)(h.byteOffset, out.byteOffset, n);
  return n;
}

// Math.round rounds ties toward +Infinity; the references (numpy.rint, torch.round,
// ONNX QuantizeLinear) round ties to even. Inputs are float32 values held in doubles.
export function rint(x: number): number {
  const r = Math.round(x);
  // A tie resolved upward to an odd integer goes back down to the even neighbour.
  if (r - x === 0.5 && (r & 1) !== 0) return r - 1;
  return r;
}

export function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

export const f32 = Math.fround;

export const FLT_MAX = 3.4028234663852886e38;

/**
 * float32 product that saturates at ±FLT_MAX: near the top of the float32 range
 * q_max * scale can round past it, and a reconstruction must never be Infinity.
 */
export function mulSat(a: number, b: number): number {
  const v = f32(a * b);
  return v > FLT_MAX ? FLT_MAX : v < -FLT_MAX ? -FLT_MAX : v;
}

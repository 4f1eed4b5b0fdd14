import { Errors } from '../errors.js';
import { intParamsOf, planParams, type QuantParams, type QuantSpec } from './quantize.js';
import { f32 } from './round.js';
import type { Shape } from './shape.js';

// Scales and zero points the caller gives instead of calibrating (ONNX QuantizeLinear /
// DequantizeLinear with known parameters). Checked here, once, for both directions.

/**
 * A parameter array as sent: values in C order and the shape they came in ([] for a number),
 * or 'flat' for a plain list (query text) that takes the parameter shape if its length fits.
 */
export interface GivenArray {
  data: ArrayLike<number>;
  shape: readonly number[] | 'flat';
}

export type GivenSpec = Pick<QuantSpec, 'bits' | 'scheme' | 'granularity' | 'axis' | 'groupSize'>;

function showShape(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** What the granularity needs, said so a caller can fix the request. */
function expectedShape(field: string, given: readonly number[], shape: Shape, spec: GivenSpec, paramShape: readonly number[]): string {
  if (spec.granularity === 'per_tensor') {
    return (
      `${field} has shape ${showShape(given)}, but granularity per_tensor takes one number; ` +
      `for one ${field} per channel set granularity=per_channel (shape [shape[axis]]), per block granularity=per_group ` +
      `(the tensor's shape with shape[axis] replaced by ceil(shape[axis] / group_size))`
    );
  }
  const what =
    spec.granularity === 'per_channel'
      ? `granularity per_channel on axis ${spec.axis} of a ${showShape(shape)} tensor needs shape ${showShape(paramShape)}`
      : `granularity per_group (axis ${spec.axis}, group_size ${spec.groupSize}) of a ${showShape(shape)} tensor needs shape ${showShape(paramShape)}`;
  const hint = given.length === 0 ? ` (a single number is a per_tensor ${field}: set granularity=per_tensor)` : '';
  return `${field} has shape ${showShape(given)}; ${what}${hint}`;
}

function checkShape(field: string, g: GivenArray, shape: Shape, spec: GivenSpec, paramShape: readonly number[]): void {
  const n = paramShape.reduce((a, b) => a * b, 1);
  if (g.shape === 'flat') {
    if (g.data.length === n) return;
    const as = g.data.length === 1 ? [] : [g.data.length];
    throw new Errors.Option(`${expectedShape(field, as, shape, spec, paramShape)} (${n} comma-separated value${n === 1 ? '' : 's'} in C order)`);
  }
  // A per-tensor parameter may come as a number or as a one-element 1-D array (both are ONNX scalars).
  const ok = paramShape.length === 0 ? g.shape.length === 0 || sameShape(g.shape, [1]) : sameShape(g.shape, paramShape);
  if (!ok) throw new Errors.Option(expectedShape(field, g.shape, shape, spec, paramShape));
  if (g.data.length !== n) throw new Errors.Option(`${field} holds ${g.data.length} values; shape ${showShape(paramShape)} needs ${n}`);
}

/** Where parameter i sits, as an index into the parameter shape ("" for a scalar). */
function at(i: number, paramShape: readonly number[]): string {
  if (paramShape.length === 0) return '';
  const idx: number[] = [];
  let rest = i;
  for (let d = paramShape.length - 1; d >= 0; d--) {
    idx.unshift(rest % paramShape[d]!);
    rest = Math.floor(rest / paramShape[d]!);
  }
  return `[${idx.join(', ')}]`;
}

/**
 * The parameters for quantizing or dequantizing a tensor of `shape` with the caller's scale
 * (and zero point, default 0 as in ONNX): their shapes must be those the granularity gives,
 * every scale a positive finite float32, every zero point an integer in the type's range.
 */
export function givenParams(shape: Shape, spec: GivenSpec, scale: GivenArray, zeroPoint?: GivenArray): QuantParams {
  const ip = intParamsOf(spec.bits, spec.scheme);
  const plan = planParams(shape, spec.granularity, spec.axis, spec.groupSize);
  checkShape('scale', scale, shape, spec, plan.paramShape);
  if (zeroPoint) checkShape('zero_point', zeroPoint, shape, spec, plan.paramShape);
  const s = new Float32Array(plan.count);
  const zp = new Int32Array(plan.count);
  for (let i = 0; i < plan.count; i++) {
    const v = scale.data[i]!;
    s[i] = f32(v);
    if (!(s[i]! > 0) || !Number.isFinite(s[i]!)) {
      const why = Number.isNaN(v) ? 'NaN' : !Number.isFinite(v) ? String(v) : v > 0 ? `${v} (0 as a float32)` : String(v);
      throw new Errors.Option(`scale${at(i, plan.paramShape)} must be a positive finite float32, got: ${why}`);
    }
    if (!zeroPoint) continue;
    const z = zeroPoint.data[i]!;
    if (!Number.isInteger(z) || z < ip.qMin || z > ip.qMax) {
      throw new Errors.Option(
        `zero_point${at(i, plan.paramShape)} must be an integer in [${ip.qMin}, ${ip.qMax}] (${ip.dtype}, bits=${spec.bits}, scheme=${spec.scheme}), got: ${z}`,
      );
    }
    zp[i] = z;
  }
  return { ...ip, plan, scale: s, zeroPoint: zp };
}

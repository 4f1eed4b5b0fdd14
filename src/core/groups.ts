import type { ParamPlan } from './quantize.js';

/**
 * The values of each parameter's group, laid out contiguously, group p at
 * [offsets[p], offsets[p + 1]); the same result as reference/quantize.ts groupValuesReference.
 * The common layouts need no copy at all: a channel along the leading axis and a group
 * along the last axis are already runs of x, in parameter order.
 */
export function groupValues(x: Float32Array, plan: ParamPlan): { values: Float32Array; offsets: Float64Array } {
  const { outer, len, inner, group, count } = plan;
  const offsets = new Float64Array(count + 1);
  if (count === 1) {
    offsets[1] = x.length;
    return { values: x, offsets };
  }
  const perChannel = plan.axisStride === 1 && plan.innerStride === 0;
  if (perChannel) {
    const each = outer * inner;
    for (let p = 0; p <= count; p++) offsets[p] = p * each;
    if (outer === 1) return { values: x, offsets };
    // Channel c gathers its inner-length runs from every outer index, in outer order.
    const values = new Float32Array(x.length);
    for (let o = 0; o < outer; o++) {
      for (let c = 0; c < len; c++) {
        const from = (o * len + c) * inner;
        const to = c * each + o * inner;
        // A typed-array set only pays off for long runs; short ones copy element by element.
        if (inner >= 64) values.set(x.subarray(from, from + inner), to);
        else for (let i = 0; i < inner; i++) values[to + i] = x[from + i]!;
      }
    }
    return { values, offsets };
  }
  // per_group: parameter (o, b, i) holds the block's run along the axis at inner offset i.
  const blocks = Math.ceil(len / group);
  let at = 0;
  for (let o = 0; o < outer; o++) {
    for (let b = 0; b < blocks; b++) {
      const size = Math.min(group, len - b * group);
      for (let i = 0; i < inner; i++) {
        offsets[(o * blocks + b) * inner + i] = at;
        at += size;
      }
    }
  }
  offsets[count] = at;
  if (inner === 1) return { values: x, offsets };
  const values = new Float32Array(x.length);
  for (let o = 0; o < outer; o++) {
    for (let a = 0; a < len; a++) {
      const b = (a / group) | 0;
      const base = (o * blocks + b) * inner;
      const within = a - b * group;
      const from = (o * len + a) * inner;
      for (let i = 0; i < inner; i++) values[offsets[base + i]! + within] = x[from + i]!;
    }
  }
  return { values, offsets };
}

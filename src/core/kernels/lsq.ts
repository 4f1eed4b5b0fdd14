import type { IntParams } from '../calibrate.js';
import { LSQ_NEIGHBOUR_REFITS, LSQ_NEIGHBOURS, LSQ_REFITS } from '../methods/lsq.js';
import { LSQ_F32_CHECK_MAX, lsqMargin } from '../methods/refit-f32.js';
import { runUnits, SCRATCH, SCRATCH_BYTES, SLOT, type GroupInputs } from './group-units.js';

/** The longest group lsq.wat takes: its scratch (640 bytes + 32 per value) fits SCRATCH_BYTES. */
export const LSQ_KERNEL_MAX_GROUP = Math.floor((SCRATCH_BYTES - 640) / 32);
// The kernel always judges its result by the float32 scores: the reference must do the same for every group it takes.
if (LSQ_KERNEL_MAX_GROUP > LSQ_F32_CHECK_MAX) throw new Error(`lsq kernel: groups up to ${LSQ_KERNEL_MAX_GROUP} exceed LSQ_F32_CHECK_MAX ${LSQ_F32_CHECK_MAX}`);

/**
 * lsq's scale and zero point for the groups `ids` (ascending, each of length n ≤
 * LSQ_KERNEL_MAX_GROUP, unweighted, finite), written to scale[id] / zeroPoint[id]. `table`
 * holds the candidates' numerators (methods/lsq.ts lsqTable). Equal to lsqGroup bit for bit.
 */
export function lsqKernel(values: Float32Array, g: GroupInputs, ids: Int32Array, n: number, p: IntParams, table: Float32Array, scale: Float32Array, zeroPoint: Int32Array): void {
  if (!(n >= 1 && n <= LSQ_KERNEL_MAX_GROUP)) throw new RangeError(`lsq kernel: group length ${n} is outside 1..${LSQ_KERNEL_MAX_GROUP}`);
  const sym = p.scheme === 'symmetric' ? 1 : 0;
  const { c1, c2 } = lsqMargin(n);
  runUnits(values, g, ids, n, scale, zeroPoint, (k, units, base) => {
    k.f32.set(table, SLOT.tab >> 2);
    k.lsq.lsq(units, n, base, SLOT.offs, SLOT.lo, SLOT.hi, SLOT.rs, SLOT.rz, SLOT.os, SLOT.oz, SLOT.tab, table.length, sym, p.qMin, p.qMax,
      LSQ_REFITS, LSQ_NEIGHBOURS ? 1 : 0, LSQ_NEIGHBOUR_REFITS, c1, c2, SCRATCH);
  });
}

import type { IntParams } from '../calibrate.js';
import { runUnits, SCRATCH, SCRATCH_BYTES, SLOT, type GroupInputs } from './group-units.js';

/** The longest group hqq.wat takes: its scratch (64 bytes + 16 per value) fits SCRATCH_BYTES. */
export const HQQ_KERNEL_MAX_GROUP = Math.floor((SCRATCH_BYTES - 64) / 16);

/**
 * hqq's best parameters for the groups `ids` (ascending, each of length n ≤
 * HQQ_KERNEL_MAX_GROUP, finite), written to scale[id] / zeroPoint[id]. `table` holds β and
 * the shrink's threshold per iteration (methods/hqq.ts hqqTable), `exponent` p − 1. Equal
 * to hqqGroup bit for bit.
 */
export function hqqKernel(values: Float32Array, g: GroupInputs, ids: Int32Array, n: number, p: IntParams, table: Float64Array, exponent: number, scale: Float32Array, zeroPoint: Int32Array): void {
  if (!(n >= 1 && n <= HQQ_KERNEL_MAX_GROUP)) throw new RangeError(`hqq kernel: group length ${n} is outside 1..${HQQ_KERNEL_MAX_GROUP}`);
  const sym = p.scheme === 'symmetric' ? 1 : 0;
  runUnits(values, g, ids, n, scale, zeroPoint, (k, units, base) => {
    k.f64.set(table, SLOT.tab >> 3);
    k.hqq.hqq(units, n, base, SLOT.offs, SLOT.rs, SLOT.rz, SLOT.os, SLOT.oz, SLOT.tab, table.length >> 1, exponent, sym, p.qMin, p.qMax, SCRATCH);
  });
}

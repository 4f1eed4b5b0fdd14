import type { IntParams } from '../calibrate.js';
import { runUnits, SCRATCH, SCRATCH_BYTES, SLOT, type GroupInputs } from './group-units.js';

/** The longest group hqq.wat takes: its scratch (256 bytes + 16 per value) fits SCRATCH_BYTES. */
export const HQQ_KERNEL_MAX_GROUP = Math.floor((SCRATCH_BYTES - 256) / 16);

/**
 * hqq's best parameters for the groups `ids` (ascending, each of length n ≤
 * HQQ_KERNEL_MAX_GROUP, finite), written to scale[id] / zeroPoint[id]. `table` holds β and
 * the shrink's threshold per iteration (methods/hqq.ts hqqTable), `power` the power's
 * constants (methods/hqq-power.ts powerConstants). Equal to hqqGroup bit for bit.
 */
export function hqqKernel(values: Float32Array, g: GroupInputs, ids: Int32Array, n: number, p: IntParams, table: Float32Array, power: Float32Array, scale: Float32Array, zeroPoint: Int32Array): void {
  if (!(n >= 1 && n <= HQQ_KERNEL_MAX_GROUP)) throw new RangeError(`hqq kernel: group length ${n} is outside 1..${HQQ_KERNEL_MAX_GROUP}`);
  if (power.length > 16) throw new RangeError(`hqq kernel: ${power.length} power constants, at most 16`);
  const sym = p.scheme === 'symmetric' ? 1 : 0;
  runUnits(values, g, ids, n, scale, zeroPoint, (k, units, base) => {
    k.f32.set(power, SLOT.tab >> 2);
    k.f32.set(table, (SLOT.tab >> 2) + 16);
    k.hqq.hqq(units, n, base, SLOT.offs, SLOT.rs, SLOT.rz, SLOT.os, SLOT.oz, SLOT.tab, table.length >> 1, (p.qMin + p.qMax) / 2, sym, p.qMin, p.qMax, SCRATCH);
  });
}

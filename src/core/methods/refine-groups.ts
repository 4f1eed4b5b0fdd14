import type { IntParams, Range } from '../calibrate.js';
import { countNaN } from '../kernels/calibrate.js';
import { hqqKernel, HQQ_KERNEL_MAX_GROUP } from '../kernels/hqq.js';
import { lsqKernel, LSQ_KERNEL_MAX_GROUP } from '../kernels/lsq.js';
import { paramsFromRanges } from '../kernels/quantize.js';
import { HQQ_DEFAULTS, hqqGroup, hqqTable } from './hqq.js';
import { powerConstants } from './hqq-power.js';
import { lsqGroup, lsqTable } from './lsq.js';

// Every group of a tensor under lsq or hqq from its min-max range: the groups the kernels
// take (equal length, finite, unweighted) go to them, the rest to the reference one by one.
// Both give the same parameters bit for bit (test/core/kernels/lsq.test.ts, hqq.test.ts).

/**
 * Group p is values[offsets[p], offsets[p + 1]), its min-max range [lo[p], hi[p]] (float32,
 * as minmaxRanges gives them); its scale and zero point go to scale[p] / zeroPoint[p].
 */
export function refineGroups(method: 'lsq' | 'hqq', values: Float32Array, offsets: Float64Array, lo: Float32Array, hi: Float32Array, p: IntParams, scale: Float32Array, zeroPoint: Int32Array): void {
  const count = lo.length;
  const rtnScale = new Float32Array(count);
  const rtnZeroPoint = new Int32Array(count);
  paramsFromRanges(lo, hi, p, rtnScale, rtnZeroPoint);
  const rest: number[] = [];
  if (countNaN(values) === 0) {
    // The kernel takes the groups of the most common length (the others: a shorter last block).
    const n = count > 0 ? offsets[1]! - offsets[0]! : 0;
    const ids = new Int32Array(count);
    let m = 0;
    for (let g = 0; g < count; g++) {
      const ok = offsets[g + 1]! - offsets[g]! === n && Math.abs(lo[g]!) < Infinity && Math.abs(hi[g]!) < Infinity;
      if (ok) ids[m++] = g;
      else rest.push(g);
    }
    const inputs = { offsets, lo, hi, rtnScale, rtnZeroPoint };
    if (m > 0 && n >= 1 && n <= (method === 'lsq' ? LSQ_KERNEL_MAX_GROUP : HQQ_KERNEL_MAX_GROUP)) {
      if (method === 'lsq') lsqKernel(values, inputs, ids.subarray(0, m), n, p, lsqTable(p), scale, zeroPoint);
      else hqqKernel(values, inputs, ids.subarray(0, m), n, p, hqqTable(), powerConstants(HQQ_DEFAULTS.lpNorm - 1), scale, zeroPoint);
    } else for (let i = 0; i < m; i++) rest.push(ids[i]!);
    rest.sort((a, b) => a - b);
  } else for (let g = 0; g < count; g++) rest.push(g);
  for (const g of rest) {
    const slice = values.subarray(offsets[g]!, offsets[g + 1]!);
    const alpha = Math.max(Math.abs(lo[g]!), Math.abs(hi[g]!));
    const range: Range = p.scheme === 'asymmetric' ? { lo: lo[g]!, hi: hi[g]! } : { lo: -alpha, hi: alpha };
    const sz = method === 'lsq' ? lsqGroup(slice, range, p) : hqqGroup(slice, range, p);
    scale[g] = sz.scale;
    zeroPoint[g] = sz.zeroPoint;
  }
}

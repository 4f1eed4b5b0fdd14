import { INT_DTYPE_INFO } from '../../core/dtypes.js';
import { quadraticForms } from '../../core/kernels/linalg.js';
import { gptq } from '../../core/methods/gptq.js';
import { reportFromSums } from '../../core/metrics.js';
import { intParamsOf, planParams, type QuantParams } from '../../core/quantize.js';
import type { ModelQuantOptions } from './options.js';
import type { WeightPlan } from './plan.js';
import type { QuantizedWeight } from './quantize-weight.js';
import { convColumns, permuteHessian } from './conv-columns.js';

// method=gptq for a Conv weight W [M, C/group, ...kernel]: GPTQ's add_batch for nn.Conv2d
// (IST-DASLab/gptq gptq.py) unfolds the input into patches of K = C/group · Π kernel features
// and takes W as [M, K] (W.flatten(1), nn.Unfold's (c, p) order, which is the weight's own
// memory layout). With group > 1 each conv group is its own linear layer: output channels
// [g·M/group, (g+1)·M/group) read patches of channels [g·C/group, …) only, so each gets GPTQ
// with its own K×K Hessian (xtx holds group of them, weight-stats.ts 'patches').
//
// Per channel one grid per output channel (the whole row). Per group, the service's blocks run
// along C (blocked DequantizeLinear on axis 1: a block is group_size channels at one kernel
// position), so the columns are taken in (p, c) order, the Hessian permuted the same way: a
// block is then group_size contiguous columns, as GPTQ's static groups want. That needs the
// blocks to tile C/group exactly (C/group a multiple of group_size, or at most group_size).
// A depthwise weight (C/group = 1) is planned per channel, in int8 below 8 bits (plan.ts:
// blocks along C/group = 1 would be one weight each, nothing to fit), so gptq fits each output
// channel's kh·kw row on that channel's own patch Hessian.

export interface ConvGeometry {
  group: number;
  patchK: number;
}

/** Why the plan's blocks cannot be GPTQ's contiguous groups for this Conv weight, or undefined. */
export function gptqConvProblem(dims: readonly number[], plan: WeightPlan): string | undefined {
  if (plan.granularity === 'per_tensor') return 'gptq fits per group or per channel';
  if (plan.granularity === 'per_channel') return plan.axis === 0 ? undefined : `per channel along axis ${plan.axis}, not the output channels`;
  if (plan.axis !== 1) return `its blocks run along axis ${plan.axis}, not the input channels`;
  const cg = dims[1]!;
  const gs = Math.min(plan.groupSize, cg);
  if (cg % gs !== 0) return `gptq on a Conv weight needs group_size to divide its ${cg} input channels per group (blocks along C at each kernel position must tile it), got ${plan.groupSize}`;
  return undefined;
}

export function quantizeGptqConv(values: Float32Array, dims: readonly number[], plan: WeightPlan, opts: Pick<ModelQuantOptions, 'scheme' | 'gptq'>, geo: ConvGeometry, xtx: Float64Array): QuantizedWeight {
  const problem = gptqConvProblem(dims, plan);
  if (problem) throw new Error(`quantizeGptqConv: ${problem}`);
  const m = dims[0]!;
  const cg = dims[1]!;
  const p = dims.slice(2).reduce((a, b) => a * b, 1);
  const k = cg * p;
  if (k !== geo.patchK || m % geo.group !== 0 || xtx.length !== geo.group * k * k) throw new Error(`quantizeGptqConv: weight [${dims.join(', ')}] does not match ${geo.group} Hessians of ${geo.patchK} features`);
  const perGroup = plan.granularity === 'per_group';
  const gs = perGroup ? Math.min(plan.groupSize, cg) : k;
  const col = convColumns(cg, p, perGroup);
  const blocksPerP = perGroup ? cg / gs : 1;
  const ip = intParamsOf(plan.bits, opts.scheme);
  const pp = planParams(dims, plan.granularity, plan.axis, plan.groupSize);
  const scale = new Float32Array(pp.count);
  const zeroPoint = new Int32Array(pp.count);
  const q = INT_DTYPE_INFO[ip.dtype].create(values.length);
  const rowsPer = m / geo.group;
  let sumSq = 0;
  let sumAbs = 0;
  let sumX2 = 0;
  let maxError = 0;
  for (let g = 0; g < geo.group; g++) {
    const w = new Float32Array(rowsPer * k);
    for (let r = 0; r < rowsPer; r++) {
      const base = (g * rowsPer + r) * k;
      for (let j = 0; j < k; j++) w[r * k + j] = values[base + col[j]!]!;
    }
    const h = permuteHessian(xtx.subarray(g * k * k, (g + 1) * k * k), col);
    const res = gptq(w, rowsPer, k, h, { bits: plan.bits, scheme: opts.scheme, groupSize: gs, damp: opts.gptq.damp, blockSize: opts.gptq.blockSize, actOrder: opts.gptq.actOrder });
    for (let r = 0; r < rowsPer; r++) {
      const oc = g * rowsPer + r;
      for (let j = 0; j < k; j++) {
        const b = (j / gs) | 0;
        // Per group, GPTQ's group b is channel block b % blocksPerP at kernel position b / blocksPerP.
        const at = perGroup ? (oc * (cg / gs) + (b % blocksPerP)) * p + ((b / blocksPerP) | 0) : oc;
        scale[at] = res.scales[r * res.groups + b]!;
        zeroPoint[at] = res.zeroPoints[r * res.groups + b]!;
        const code = res.codes[r * k + j]!;
        const e = oc * k + col[j]!;
        q[e] = code;
        const x = values[e]!;
        const err = Math.abs(x - Math.fround((code - zeroPoint[at]!) * scale[at]!));
        sumSq += err * err;
        sumAbs += err;
        sumX2 += x * x;
        if (err > maxError) maxError = err;
      }
    }
  }
  const params: QuantParams = { ...ip, plan: pp, scale, zeroPoint };
  return { params, q, error: reportFromSums({ count: values.length, clipped: 0, maxError, sumAbs, sumSq, sumX2 }) };
}

/** ‖X_patches · ΔW‖² summed over the conv groups: the output error GPTQ minimizes, for the report's comparison with rtn. */
export function convProxyLoss(w: Float32Array, wHat: Float32Array, dims: readonly number[], geo: ConvGeometry, xtx: Float64Array): number {
  const k = geo.patchK;
  const rowsPer = dims[0]! / geo.group;
  let loss = 0;
  for (let g = 0; g < geo.group; g++) {
    const d = new Float32Array(rowsPer * k);
    const base = g * rowsPer * k;
    for (let i = 0; i < d.length; i++) d[i] = w[base + i]! - wHat[base + i]!;
    loss += quadraticForms([d], rowsPer, k, xtx.subarray(g * k * k, (g + 1) * k * k))[0]!;
  }
  return loss;
}

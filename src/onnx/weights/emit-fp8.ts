import { quantizeFp8, type Fp8Type } from '../../core/fp8.js';
import { reportFromSums, type ErrorReport } from '../../core/metrics.js';
import { planParams } from '../../core/quantize.js';
import { attrs, floatTensor, node, tensor } from '../graph/build.js';
import { DataType, type OnnxTensor } from '../proto/model.js';
import type { GraphEdit } from '../graph/edit.js';
import type { WeightCandidate } from './find-weights.js';
import type { WeightPlan } from './plan.js';

// FP8 weights: float8 values + a float32 scale per tensor, channel or block, read by a
// DequantizeLinear (opset ≥ 19, blocked from 21) whose output keeps the weight's name, as
// emit-qdq does for integers. No zero point: float8 DequantizeLinear defaults it to 0.

export interface Fp8Weight {
  type: Fp8Type;
  codes: Uint8Array;
  scale: Float32Array;
  paramShape: number[];
  error: ErrorReport;
}

export function fp8TypeOf(format: 'fp8e4m3' | 'fp8e5m2'): Fp8Type {
  return format === 'fp8e4m3' ? 'float8e4m3fn' : 'float8e5m2';
}

export function quantizeFp8Weight(values: Float32Array, dims: readonly number[], plan: WeightPlan, type: Fp8Type): Fp8Weight {
  const p = planParams(dims, plan.granularity, plan.axis, plan.groupSize);
  const { codes, scale, sums } = quantizeFp8(values, p, type);
  return { type, codes, scale, paramShape: p.paramShape, error: reportFromSums(sums) };
}

export function emitFp8(edit: GraphEdit, c: WeightCandidate, plan: WeightPlan, w: Fp8Weight): OnnxTensor[] {
  const qName = edit.unique(`${c.name}_${w.type}`);
  const sName = edit.unique(`${c.name}_scale`);
  const tensors = [tensor(qName, DataType[w.type], c.tensor.dims, w.codes), floatTensor(sName, w.paramShape, w.scale)];
  const attributes = [];
  if (plan.granularity !== 'per_tensor') attributes.push(attrs.int('axis', plan.axis));
  if (plan.granularity === 'per_group') attributes.push(attrs.int('block_size', plan.groupSize));
  edit.prepend(node('DequantizeLinear', [qName, sName], [c.name], { name: edit.unique(`${c.name}_DequantizeLinear`), attributes }), c.scope);
  edit.replaceWeight(c, tensors);
  if (c.constantNode === undefined) edit.dropInput(c.name, c.scope);
  // float8 tensors exist from IR 9.
  edit.requireIrVersion(9);
  return tensors;
}

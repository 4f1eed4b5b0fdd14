import { DataType, dataTypeName } from '../proto/model.js';
import type { WeightPlan } from './plan.js';

// Which DequantizeLinear carries a weight, given the model's opset and the weight's float
// type (each checked in onnxruntime-node 1.30, see ONNX-NOTES). The model's opset is never
// raised: where the default domain's DequantizeLinear is too old for what the weight needs,
// the com.microsoft one (axis, float16 scales, at any default opset) takes its place.

export const MS_DOMAIN = 'com.microsoft';

/** Default-domain opsets: DequantizeLinear from 10, `axis` from 13, float16 scales from 19, blocks and int4 from 21. */
export const DQ_OPSET = { perTensor: 10, axis: 13, halfScale: 19, blocked: 21 } as const;

export interface DqForm {
  domain: '' | typeof MS_DOMAIN;
  /** The scale's element type; the DequantizeLinear's output has it too. */
  scaleType: number;
  /** Set when the output must be cast back to the weight's type (bfloat16, or float16 read by a MatMul). */
  castTo: number | undefined;
  /** The form in words, with why, for the report. */
  text: string;
}

/**
 * `readByMatMul`: a MatMul reads the weight (directly or through Transpose, Cast...). onnxruntime
 * 1.30 fuses a float16 DequantizeLinear → MatMul (any domain, opset, granularity or bit width)
 * into MatMulNBits, and at graphOptimizationLevel 'extended' and 'layout' (not 'basic' or
 * 'all') that kernel reads the float16 scales through a Cast it inserts and computes wrong
 * values (NaN, or outputs with cosine < 0.2 on a ViT); float32 scales with a Cast back to
 * float16 after the DequantizeLinear run right at every level.
 */
export function dqForm(plan: Pick<WeightPlan, 'bits' | 'granularity' | 'axis' | 'groupSize'>, dataType: number, opset: number, readByMatMul = false): DqForm {
  const bf16 = dataType === DataType.bfloat16;
  const castHalf = dataType === DataType.float16 && readByMatMul;
  // onnxruntime has no bfloat16 DequantizeLinear kernel (either domain): float32 scales, then Cast.
  const scaleType = dataType === DataType.float16 && !castHalf ? DataType.float16 : DataType.float32;
  const needs: [number, string][] = [[DQ_OPSET.perTensor, 'DequantizeLinear']];
  if (plan.granularity === 'per_channel') needs.push([DQ_OPSET.axis, '`axis`']);
  if (scaleType === DataType.float16) needs.push([DQ_OPSET.halfScale, 'float16 scales']);
  if (plan.granularity === 'per_group' || plan.bits < 8) needs.push([DQ_OPSET.blocked, 'blocks and int4']);
  const missing = needs.filter(([v]) => opset < v);
  const domain = missing.length === 0 ? '' : MS_DOMAIN;
  const shape = plan.granularity === 'per_tensor' ? 'per tensor' : plan.granularity === 'per_channel' ? `axis ${plan.axis}` : `axis ${plan.axis}, block_size ${plan.groupSize}`;
  let text = `DequantizeLinear${domain ? ` (${MS_DOMAIN})` : ''}, ${shape}, ${dataTypeName(scaleType)} scales`;
  if (domain) {
    const [v, what] = missing[missing.length - 1]!;
    text += `: the default domain has ${what} from opset ${v} and this model has opset ${opset} (never raised)`;
  }
  if (bf16) text += '; then Cast to bfloat16 (onnxruntime has no bfloat16 DequantizeLinear)';
  if (castHalf) text += "; then Cast to float16 (onnxruntime 1.30 computes a float16 DequantizeLinear → MatMul wrongly at graphOptimizationLevel 'extended' and 'layout')";
  return { domain, scaleType, castTo: bf16 ? DataType.bfloat16 : castHalf ? DataType.float16 : undefined, text };
}

import { INT_DTYPE_INFO } from '../../core/dtypes.js';
import { floatsToHalves } from '../../core/float16.js';
import { pack } from '../../core/pack.js';
import { attrs, floatTensor, node, tensor } from '../graph/build.js';
import { DataType, type OnnxGraph, type OnnxTensor } from '../proto/model.js';
import type { GraphEdit } from '../graph/edit.js';
import { dqForm, MS_DOMAIN, type DqForm } from './dq-form.js';
import type { WeightCandidate } from './find-weights.js';
import type { WeightPlan } from './plan.js';
import { qdqContainer, type QuantizedWeight } from './quantize-weight.js';

/** A scale array in the element type the form asks for (float16 rounds to nearest even). */
export function scaleTensor(name: string, dims: readonly number[], scale: Float32Array, type: number): OnnxTensor {
  if (type === DataType.float16) return tensor(name, DataType.float16, dims, floatsToHalves(scale));
  return floatTensor(name, dims, scale);
}

/**
 * The weight becomes integer data + scale + zero point and a DequantizeLinear whose output
 * keeps the weight's name (and type), so every consumer (including ones we do not quantize
 * for, and ones that read it through a Transpose or Cast, or from a subgraph) reads it
 * unchanged and a shared weight is stored once. The DequantizeLinear goes in the graph that
 * defines the weight, where every nested graph sees it.
 */
export function emitQdq(
  edit: GraphEdit,
  c: Pick<WeightCandidate, 'name' | 'tensor' | 'constantNode'> & { scope?: OnnxGraph | undefined; uses?: WeightCandidate['uses'] | undefined },
  plan: WeightPlan,
  w: QuantizedWeight,
  // The model's default opset (the form follows from it, dq-form.ts), or, for static
  // quantization's float32 weights, the domain it chose (the zero point is then kept).
  where: number | string,
): { tensors: OnnxTensor[]; form: DqForm } {
  const form: DqForm =
    typeof where === 'number'
      ? dqForm(plan, c.tensor.dataType, where, c.uses?.some((u) => u.opType === 'MatMul') ?? false)
      : { domain: where === MS_DOMAIN ? MS_DOMAIN : '', scaleType: DataType.float32, castTo: undefined, text: '' };
  const keepZeroPoint = typeof where === 'string';
  const signed = w.params.scheme === 'symmetric';
  const container = qdqContainer(plan.bits, signed);
  const elemType = DataType[container as keyof typeof DataType];
  const info = INT_DTYPE_INFO[container];
  const zp = info.create(w.params.zeroPoint.length);
  zp.set(w.params.zeroPoint);
  const paramShape = w.params.plan.paramShape;

  const qName = edit.unique(`${c.name}_quantized`);
  const sName = edit.unique(`${c.name}_scale`);
  const tensors = [tensor(qName, elemType, c.tensor.dims, pack(w.q, container)), scaleTensor(sName, paramShape, w.params.scale, form.scaleType)];
  // Symmetric zero points are all 0, DequantizeLinear's default for an absent zero point
  // (the input's type then decides signedness): one byte per scale saved on small layers.
  const inputs = [qName, sName];
  if (!signed || keepZeroPoint) {
    const zName = edit.unique(`${c.name}_zero_point`);
    tensors.push(tensor(zName, elemType, paramShape, pack(zp, container)));
    inputs.push(zName);
  }
  const attributes = [];
  if (plan.granularity !== 'per_tensor') attributes.push(attrs.int('axis', plan.axis));
  if (plan.granularity === 'per_group') attributes.push(attrs.int('block_size', plan.groupSize));
  const dqOut = form.castTo === undefined ? c.name : edit.unique(`${c.name}_dequantized`);
  const dq = node('DequantizeLinear', inputs, [dqOut], { name: edit.unique(`${c.name}_DequantizeLinear`), domain: form.domain, attributes });
  edit.prepend(dq, c.scope);
  if (form.castTo !== undefined) {
    edit.prepend(node('Cast', [dqOut], [c.name], { name: edit.unique(`${c.name}_Cast`), attributes: [attrs.int('to', form.castTo)] }), c.scope);
  }
  if (form.domain === MS_DOMAIN) edit.requireOpset(MS_DOMAIN, 1);

  edit.replaceWeight(c, tensors);
  // The DequantizeLinear output keeps the weight's name, but it is no initializer any more.
  if (c.constantNode === undefined) edit.dropInput(c.name, c.scope);
  // int4/uint4 tensors exist from IR 10 (opset 21 models already declare it).
  if (container.endsWith('4')) edit.requireIrVersion(10);
  return { tensors, form };
}

import { INT_DTYPE_INFO } from '../../core/dtypes.js';
import { pack } from '../../core/pack.js';
import { attrs, floatTensor, node, tensor } from '../graph/build.js';
import { DataType, type OnnxTensor } from '../proto/model.js';
import type { GraphEdit } from '../graph/edit.js';
import type { WeightCandidate } from './find-weights.js';
import type { WeightPlan } from './plan.js';
import { qdqContainer, type QuantizedWeight } from './quantize-weight.js';

/**
 * The weight becomes integer data + scale + zero point and a DequantizeLinear whose output
 * keeps the weight's name, so every consumer (including ones we do not quantize for) reads
 * it unchanged and a shared weight is stored once.
 */
export function emitQdq(
  edit: GraphEdit,
  c: Pick<WeightCandidate, 'name' | 'tensor' | 'constantNode'>,
  plan: WeightPlan,
  w: QuantizedWeight,
  // com.microsoft's DequantizeLinear takes `axis` at any default opset (static quantization of opset < 13 models).
  domain = '',
): OnnxTensor[] {
  const signed = w.params.scheme === 'symmetric';
  const container = qdqContainer(plan.bits, signed);
  const elemType = DataType[container as keyof typeof DataType];
  const info = INT_DTYPE_INFO[container];
  const zp = info.create(w.params.zeroPoint.length);
  zp.set(w.params.zeroPoint);
  const paramShape = w.params.plan.paramShape;

  const qName = edit.unique(`${c.name}_quantized`);
  const sName = edit.unique(`${c.name}_scale`);
  const zName = edit.unique(`${c.name}_zero_point`);
  const tensors = [
    tensor(qName, elemType, c.tensor.dims, pack(w.q, container)),
    floatTensor(sName, paramShape, w.params.scale),
    tensor(zName, elemType, paramShape, pack(zp, container)),
  ];
  const attributes = [];
  if (plan.granularity !== 'per_tensor') attributes.push(attrs.int('axis', plan.axis));
  if (plan.granularity === 'per_group') attributes.push(attrs.int('block_size', plan.groupSize));
  edit.prepend(node('DequantizeLinear', [qName, sName, zName], [c.name], { name: edit.unique(`${c.name}_DequantizeLinear`), attributes, domain }));
  if (domain) edit.requireOpset(domain, 1);

  edit.replaceWeight(c, tensors);
  // The DequantizeLinear output keeps the weight's name, but it is no initializer any more.
  if (c.constantNode === undefined) edit.dropInput(c.name);
  // int4/uint4 tensors exist from IR 10 (opset 21 models already declare it).
  if (container.endsWith('4')) edit.requireIrVersion(10);
  return tensors;
}

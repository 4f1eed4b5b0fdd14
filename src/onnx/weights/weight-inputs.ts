import { attrInt, DataType } from '../proto/model.js';
import { gemmAttrs, type WeightCandidate } from './find-weights.js';

// Which activation each weight multiplies, for the data-aware methods: the statistics of
// that activation (diag or full XᵀX over its rows of K features) are what imatrix, GPTQ and
// AWQ weigh the weight's error by. A weight read by several nodes adds up their inputs'
// statistics (the loss is the sum of their output errors).

export interface StatsLayout {
  /** 'rows': the tensor is [..., K], each row one input vector (MatMul A, Gemm A). 'channels': [N, K, ...spatial] (Conv X), per-channel sums only. */
  kind: 'rows' | 'channels';
}

export interface WeightInput {
  /** The activation tensor, as named in the main graph. */
  activation: string;
  /** Input features the weight reduces over. */
  k: number;
  layout: StatsLayout['kind'];
}

export interface WeightInputs {
  inputs: WeightInput[];
  /** The axis of the weight's own dims that runs over the K input features. */
  kAxis: number;
}

/**
 * The activations a weight multiplies, or why the data-aware methods cannot see them (the
 * weight is then rounded to nearest, and the report says why). `full` asks for the layouts a
 * K×K XᵀX can be built for: MatMul and Gemm rows (Conv needs patches: refused).
 */
export function weightInputs(c: WeightCandidate, full: boolean): WeightInputs | string {
  if (c.scopeLabel !== 'main graph') return `a weight in ${c.scopeLabel}: its input activations are not collected (only the main graph's are)`;
  if (c.tensor.dims.length !== 2 && !(c.tensor.dims.length >= 3 && c.uses.every((u) => u.opType === 'Conv'))) {
    return `a weight of rank ${c.tensor.dims.length}: the data-aware methods take 2-D MatMul/Gemm weights${full ? '' : ' and Conv weights'}`;
  }
  const kAxis = c.uses[0]!.blockAxis;
  if (c.uses.some((u) => u.blockAxis !== kAxis)) return 'its consumers read it along different axes';
  if (c.uses.some((u) => u.via.includes('Slice'))) return 'a consumer reads a slice of it';
  const k = c.tensor.dims[kAxis]!;
  const inputs: WeightInput[] = [];
  for (const u of c.uses) {
    const x = u.node.inputs[0] ?? '';
    if (x === '') return `${u.opType} '${u.node.name}' has no input 0`;
    switch (u.opType) {
      case 'MatMul':
        inputs.push({ activation: x, k, layout: 'rows' });
        break;
      case 'Gemm':
        if (gemmAttrs(u.node).transA !== 0) return `Gemm '${u.node.name}' has transA=1: its input's rows are not the input vectors`;
        inputs.push({ activation: x, k, layout: 'rows' });
        break;
      case 'Conv':
        if (full) return `Conv '${u.node.name}': gptq and awq need the input patches' K×K XᵀX (C/group·kh·kw features), which is not built for Conv here: use method=imatrix or a data-free method for Conv weights`;
        if (attrInt(u.node, 'group', 1) !== 1) return `Conv '${u.node.name}' has group=${attrInt(u.node, 'group', 1)}: per-channel importance is taken for group=1 only`;
        inputs.push({ activation: x, k, layout: 'channels' });
        break;
      default:
        return `a ${u.opType} reads it: the data-aware methods take MatMul, Gemm${full ? '' : ' and Conv'} weights (input 0 is the activation)`;
    }
  }
  if (c.tensor.dataType !== DataType.float32 && c.tensor.dataType !== DataType.float16 && c.tensor.dataType !== DataType.bfloat16) return 'not a float weight';
  return { inputs, kAxis };
}

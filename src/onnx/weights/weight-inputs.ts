import { attr, attrInt, DataType, type OnnxNode } from '../proto/model.js';
import { gemmAttrs, type WeightCandidate } from './find-weights.js';

// Which activation each weight multiplies, for the data-aware methods: the statistics of
// that activation (diag or full XᵀX over its rows of K features) are what imatrix, GPTQ and
// AWQ weigh the weight's error by. A weight read by several nodes adds up their inputs'
// statistics (the loss is the sum of their output errors).

export interface StatsLayout {
  /**
   * 'rows': the tensor is [..., K], each row one input vector (MatMul A, Gemm A). 'channels': [N, K, ...spatial] (Conv X), per-channel sums only.
   * 'patches': [N, C, ...spatial] (Conv X) with per-channel sums and the XᵀX of its unfolded patches (conv).
   */
  kind: 'rows' | 'channels' | 'patches';
}

/** What GPTQ's nn.Unfold of a Conv input needs: the Conv node's geometry and the weight's shape. */
export interface ConvPatches {
  /** The Conv node whose kernel, strides, pads, dilations and auto_pad the patches follow. */
  node: OnnxNode;
  group: number;
  /** Input channels per group (the weight's dim 1). */
  channelsPerGroup: number;
  kernel: number[];
  /** Features of one patch: channelsPerGroup · Π kernel. */
  patchK: number;
}

export interface WeightInput {
  /** The activation tensor, as named in the main graph. */
  activation: string;
  /** Input features the weight reduces over (for a Conv, its input channels C). */
  k: number;
  layout: StatsLayout['kind'];
  conv?: ConvPatches | undefined;
}

/** Statistics are kept per activation, and per Conv geometry for patches (two Convs with different kernels read one X two ways). */
export function statsKey(i: Pick<WeightInput, 'activation' | 'layout' | 'conv'>): string {
  if (i.layout !== 'patches' || !i.conv) return i.activation;
  const n = i.conv.node;
  const geometry = ['strides', 'pads', 'dilations', 'auto_pad'].map((a) => {
    const at = attr(n, a);
    return at ? `${a}=${at.ints?.join(',') ?? new TextDecoder().decode(at.s ?? new Uint8Array())}` : '';
  });
  return `${i.activation}\u0000patches g${i.conv.group} k${i.conv.kernel.join('x')} c${i.conv.channelsPerGroup} ${geometry.join(' ')}`;
}

export interface WeightInputs {
  inputs: WeightInput[];
  /** The axis of the weight's own dims that runs over the K input features. */
  kAxis: number;
}

/**
 * The activations a weight multiplies, or why the data-aware methods cannot see them (the
 * weight is then rounded to nearest, and the report says why). `full` asks for the layouts a
 * K×K XᵀX can be built for: MatMul and Gemm rows, and Conv's unfolded input patches (K = C/group·Π kernel, per group).
 */
export function weightInputs(c: WeightCandidate, full: boolean): WeightInputs | string {
  if (c.scopeLabel !== 'main graph') return `a weight in ${c.scopeLabel}: its input activations are not collected (only the main graph's are)`;
  // A main-graph weight read from inside a Loop/If/Scan body: its activation is a body tensor.
  const nested = c.uses.find((u) => u.scope !== c.scope);
  if (nested) return `read by '${nested.node.name || nested.opType}' inside a subgraph: its input activations are not collected (only the main graph's are)`;
  if (c.tensor.dims.length !== 2 && !(c.tensor.dims.length >= 3 && c.uses.every((u) => u.opType === 'Conv'))) {
    return `a weight of rank ${c.tensor.dims.length}: the data-aware methods take 2-D MatMul/Gemm weights and Conv weights`;
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
        if (full) {
          if (u.via.length) return `Conv '${u.node.name}' reads the weight through ${u.via.join(' → ')}: its patches' features are not the weight's own layout`;
          if (c.tensor.dims.length < 3) return `Conv '${u.node.name}': a weight of rank ${c.tensor.dims.length}`;
          const kernel = c.tensor.dims.slice(2);
          const group = attrInt(u.node, 'group', 1);
          const channelsPerGroup = c.tensor.dims[1]!;
          inputs.push({ activation: x, k: channelsPerGroup * group, layout: 'patches', conv: { node: u.node, group, channelsPerGroup, kernel, patchK: channelsPerGroup * kernel.reduce((a, b) => a * b, 1) } });
          break;
        }
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

import { attrFloat, attrInt, type OnnxNode } from '../proto/model.js';
import type { GraphIndex } from './graph-index.js';

// Where Q/DQ goes, one small rule per op type (onnxruntime's registry.py / operators/*.py
// in spirit): each rule says which inputs are activations, weights or an int32 bias, and
// whether the outputs get their own parameters or share the input's. The planner
// (plan-static.ts) applies them in graph order. Ops with no rule (LayerNormalization, Erf,
// ReduceMean, Div...) are left float: their inputs and outputs get Q/DQ only where a
// neighbour with an integer kernel asks for it.

export interface WeightSlot {
  slot: number;
  /** Per-channel axis of the weight, or undefined for one scale (per tensor). */
  axis: number | undefined;
}

export interface BiasSlot {
  slot: number;
  /** The activation and the weight whose scales multiply into the bias scale. */
  inputSlot: number;
  weightSlot: number;
  /** Gemm's beta, folded into the bias scale (the node then gets beta = 1). */
  beta: number;
}

export interface NodeMarks {
  /** Input slots quantized as activations (a float constant there is stored in the activation type). */
  activations: number[];
  weights: WeightSlot[];
  bias?: BiasSlot | undefined;
  /**
   * own: each float output gets Q/DQ with its own calibrated range.
   * share: outputs reuse input 0's scale and zero point (so onnxruntime drops the pair and
   * runs the op on 8-bit data), and only when input 0 is already quantized.
   */
  outputs: 'own' | 'share' | 'none';
  /** Output range fixed by the op (Softmax: [0, 1]). */
  outputRange?: { min: number; max: number } | undefined;
  /** Relu/Clip: removed, its range moved to the producer's Q, where that is exact enough. */
  removable?: boolean | undefined;
}

export type PlacementRule = (node: OnnxNode, g: GraphIndex) => NodeMarks | undefined;

const floatInputs = (n: OnnxNode, g: GraphIndex) => n.inputs.flatMap((name, slot) => (name && g.isFloat(name) ? [slot] : []));

function rank(g: GraphIndex, name: string | undefined): number {
  return name ? (g.constants.get(name)?.tensor.dims.length ?? -1) : -1;
}

const weightOrActivation = (n: OnnxNode, g: GraphIndex, slot: number, axis: number | undefined) =>
  g.isConstant(n.inputs[slot] ?? '') ? { weights: [{ slot, axis }], activations: [] } : { weights: [], activations: [slot] };

function conv(channelAxis: (n: OnnxNode, g: GraphIndex) => number | undefined): PlacementRule {
  return (n, g) => {
    const w = weightOrActivation(n, g, 1, channelAxis(n, g));
    const b = n.inputs[2];
    const bias = b && g.isConstant(b) && g.isFloat(b) && w.weights.length ? { slot: 2, inputSlot: 0, weightSlot: 1, beta: 1 } : undefined;
    return { activations: [0, ...w.activations], weights: w.weights, bias, outputs: 'own' };
  };
}

const matMul: PlacementRule = (n, g) => {
  const b = n.inputs[1];
  if (b && g.isConstant(b) && rank(g, b) >= 2) return { activations: [0], weights: [{ slot: 1, axis: rank(g, b) - 1 }], outputs: 'own' };
  return { activations: [0, 1], weights: [], outputs: 'own' };
};

const gemm: PlacementRule = (n, g) => {
  const transB = attrInt(n, 'transB', 0);
  const w = weightOrActivation(n, g, 1, transB ? 0 : 1);
  const c = n.inputs[2];
  const cDims = c ? g.constants.get(c)?.tensor.dims : undefined;
  const bDims = g.constants.get(n.inputs[1] ?? '')?.tensor.dims;
  const channels = bDims?.length === 2 ? bDims[transB ? 0 : 1] : undefined;
  // QGemm takes an int32 C of the output's width only; a broadcast C stays float.
  const bias =
    c && g.isConstant(c) && g.isFloat(c) && w.weights.length && cDims?.length === 1 && cDims[0] === channels
      ? { slot: 2, inputSlot: 0, weightSlot: 1, beta: attrFloat(n, 'beta', 1) }
      : undefined;
  return { activations: [0, ...w.activations], weights: w.weights, bias, outputs: 'own' };
};

const allInputsOwnOutput: PlacementRule = (n, g) => ({ activations: floatInputs(n, g), weights: [], outputs: 'own' });
const firstInputOwnOutput: PlacementRule = () => ({ activations: [0], weights: [], outputs: 'own' });
const shareInput: PlacementRule = () => ({ activations: [], weights: [], outputs: 'share' });
const removable: PlacementRule = () => ({ activations: [], weights: [], outputs: 'own', removable: true });

export const PLACEMENT_RULES: Readonly<Record<string, PlacementRule>> = {
  Conv: conv(() => 0),
  // W is [C_in, C_out / group, ...]: per output channel only without groups.
  ConvTranspose: conv((n) => (attrInt(n, 'group', 1) === 1 ? 1 : undefined)),
  MatMul: matMul,
  Gemm: gemm,
  Add: allInputsOwnOutput,
  Mul: allInputsOwnOutput,
  Concat: allInputsOwnOutput,
  AveragePool: firstInputOwnOutput,
  GlobalAveragePool: firstInputOwnOutput,
  Sigmoid: firstInputOwnOutput,
  HardSigmoid: firstInputOwnOutput,
  LeakyRelu: firstInputOwnOutput,
  Softmax: () => ({ activations: [0], weights: [], outputs: 'own', outputRange: { min: 0, max: 1 } }),
  Where: () => ({ activations: [1, 2], weights: [], outputs: 'own' }),
  Relu: removable,
  Clip: removable,
  // 8-bit MaxPool needs opset 12, 8-bit Resize opset 11 (onnxruntime drops the pair only then).
  MaxPool: (n, g) => (g.opset >= 12 && n.outputs.length === 1 ? shareInput(n, g) : undefined),
  Resize: (n, g) => (g.opset >= 11 ? shareInput(n, g) : undefined),
  Reshape: shareInput,
  Transpose: shareInput,
  Flatten: shareInput,
  Squeeze: shareInput,
  Unsqueeze: shareInput,
  Slice: shareInput,
  Split: shareInput,
  // An embedding table (constant data) stays float: its rows are what the next op quantizes.
  Gather: (n, g) => (g.isConstant(n.inputs[0] ?? '') ? undefined : shareInput(n, g)),
  // Padding with a value other than 0 would need a zero point that represents it.
  Pad: (n, g) => {
    const mode = n.attributes.find((a) => a.name === 'mode')?.s;
    const isConstantMode = !mode || new TextDecoder().decode(mode) === 'constant';
    const value = n.inputs[2] ? g.scalar(n.inputs[2]) : attrFloat(n, 'value', 0);
    return isConstantMode && value !== 0 ? undefined : shareInput(n, g);
  },
};

export function ruleFor(n: OnnxNode): PlacementRule | undefined {
  if (n.domain !== '' && n.domain !== 'ai.onnx') return undefined;
  return Object.hasOwn(PLACEMENT_RULES, n.opType) ? PLACEMENT_RULES[n.opType] : undefined;
}

import { AttrType, DataType, attr, attrFloat, attrInt, dataTypeName, type OnnxModel, type OnnxNode, type OnnxTensor } from '../proto/model.js';
import { elementCount } from '../proto/tensor-data.js';
import { wildcard, type ModelOpType, type ModelQuantOptions } from './options.js';

// Which constants are weights worth quantizing, and how each consumer reads them. A weight
// is the second input of a MatMul (B), Gemm (B) or Conv (W) that is an initializer or a
// Constant node's value; biases (Gemm C, Conv B) are never weights.

export interface WeightUse {
  node: OnnxNode;
  nodeIndex: number;
  opType: ModelOpType;
  /** The output-channel axis of the weight for this consumer (per-channel scales). */
  channelAxis: number;
  /** The reduction axis (K, or C for Conv): blocks run along it. */
  blockAxis: number;
}

export interface WeightCandidate {
  name: string;
  tensor: OnnxTensor;
  /** Index of the Constant node holding the weight, when it is not an initializer. */
  constantNode: number | undefined;
  uses: WeightUse[];
  /** Reads of the weight by anything else: other ops or slots, graph outputs, subgraphs. */
  otherUses: number;
  elements: number;
}

export interface Skipped {
  name: string;
  reason: string;
}

const isDefaultDomain = (n: OnnxNode) => n.domain === '' || n.domain === 'ai.onnx';

/** Gemm attributes that decide which rewrites are exact. */
export function gemmAttrs(n: OnnxNode) {
  return {
    alpha: attrFloat(n, 'alpha', 1),
    beta: attrFloat(n, 'beta', 1),
    transA: attrInt(n, 'transA', 0),
    transB: attrInt(n, 'transB', 0),
  };
}

function layout(opType: ModelOpType, node: OnnxNode, rank: number): { channelAxis: number; blockAxis: number } | string {
  switch (opType) {
    case 'MatMul':
      // B is [..., K, N]: one scale per column N, blocks along K.
      return rank >= 2 ? { channelAxis: rank - 1, blockAxis: rank - 2 } : `MatMul weight of rank ${rank} (a vector) is left as it is`;
    case 'Gemm':
      if (rank !== 2) return `Gemm weight of rank ${rank} (Gemm needs rank 2)`;
      // transB=1 stores B as [N, K].
      return gemmAttrs(node).transB ? { channelAxis: 0, blockAxis: 1 } : { channelAxis: 1, blockAxis: 0 };
    case 'Conv':
      // W is [M, C/group, kh, kw, ...]: one scale per output channel M, blocks along C.
      return rank >= 3 ? { channelAxis: 0, blockAxis: 1 } : `Conv weight of rank ${rank} (Conv needs rank ≥ 3)`;
  }
}

/** Every subgraph body, still encoded (If/Loop/Scan attributes), to look for outer-scope reads. */
function subgraphBytes(model: OnnxModel): Buffer[] {
  const out: Buffer[] = [];
  for (const n of model.graph.nodes) {
    for (const a of n.attributes) {
      if ((a.type === AttrType.graph || a.type === AttrType.graphs) && a.src) out.push(Buffer.from(a.src.buffer, a.src.byteOffset, a.src.byteLength));
    }
  }
  return out;
}

function constantValue(n: OnnxNode): OnnxTensor | undefined {
  if (n.opType !== 'Constant' || !isDefaultDomain(n) || n.outputs.length !== 1) return undefined;
  return attr(n, 'value')?.t;
}

export function findWeights(model: OnnxModel, opts: ModelQuantOptions): { candidates: WeightCandidate[]; skipped: Skipped[] } {
  const g = model.graph;
  const constants = new Map<string, { tensor: OnnxTensor; constantNode: number | undefined }>();
  for (const t of g.initializers) constants.set(t.name, { tensor: t, constantNode: undefined });
  g.nodes.forEach((n, i) => {
    const t = constantValue(n);
    if (t) constants.set(n.outputs[0]!, { tensor: t, constantNode: i });
  });

  const targets = new Set<string>(opts.opTypes);
  const uses = new Map<string, { node: OnnxNode; nodeIndex: number }[]>();
  const other = new Map<string, number>();
  const bump = (name: string) => other.set(name, (other.get(name) ?? 0) + 1);
  g.nodes.forEach((node, nodeIndex) => {
    node.inputs.forEach((name, slot) => {
      if (!constants.has(name)) return;
      if (slot === 1 && targets.has(node.opType) && isDefaultDomain(node)) {
        const list = uses.get(name) ?? [];
        list.push({ node, nodeIndex });
        uses.set(name, list);
      } else bump(name);
    });
  });
  for (const o of g.outputs) if (constants.has(o.name)) bump(o.name);
  const bodies = subgraphBytes(model);
  const graphInputs = new Set(g.inputs.map((v) => v.name));
  const excludes = opts.exclude.map((p) => ({ p, re: wildcard(p) }));

  const candidates: WeightCandidate[] = [];
  const skipped: Skipped[] = [];
  for (const [name, users] of uses) {
    const { tensor, constantNode } = constants.get(name)!;
    const skip = (reason: string) => skipped.push({ name, reason });
    const nodeNames = users.map((u) => u.node.name).filter((n) => n !== '');
    const hit = excludes.find(({ re }) => re.test(name) || nodeNames.some((n) => re.test(n)));
    if (hit) {
      skip(`excluded by '${hit.p}'`);
      continue;
    }
    // From IR 4 on, an initializer that is also a graph input is only a default the caller may override.
    if (graphInputs.has(name) && model.irVersion >= 4) {
      skip('also a graph input, so callers may override it');
      continue;
    }
    if (tensor.dataType !== DataType.float32) {
      skip(`${dataTypeName(tensor.dataType)} weight (only float32 weights are quantized)`);
      continue;
    }
    if (tensor.segmented) {
      skip('stored in segments (TensorProto.segment)');
      continue;
    }
    const elements = elementCount(tensor);
    if (elements < opts.minElements) {
      skip(`${elements} elements, fewer than min_elements=${opts.minElements}`);
      continue;
    }
    const weightUses: WeightUse[] = [];
    let problem: string | undefined;
    for (const { node, nodeIndex } of users) {
      const opType = node.opType as ModelOpType;
      const l = layout(opType, node, tensor.dims.length);
      if (typeof l === 'string') {
        problem = l;
        break;
      }
      weightUses.push({ node, nodeIndex, opType, ...l });
    }
    if (problem) {
      skip(problem);
      continue;
    }
    const needle = Buffer.from(name);
    const inSubgraphs = bodies.filter((b) => b.includes(needle)).length;
    candidates.push({ name, tensor, constantNode, uses: weightUses, otherUses: (other.get(name) ?? 0) + inSubgraphs, elements });
  }
  return { candidates, skipped };
}

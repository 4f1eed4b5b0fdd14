import { DataType, attrFloat, attrInt, dataTypeName, type OnnxGraph, type OnnxModel, type OnnxNode, type OnnxTensor } from '../proto/model.js';
import { elementCount, floatReadable, WEIGHT_FLOAT_TYPES } from '../proto/tensor-data.js';
import { ModelScopes, type Definition, type Scope } from '../graph/scopes.js';
import { wildcard, type ModelOpType, type ModelQuantOptions } from './options.js';

// Which constants are weights worth quantizing, and how each consumer reads them. A weight
// is a float initializer or Constant value, in the main graph or any subgraph, read as the
// weight input of a MatMul (B), Gemm (B), Conv or ConvTranspose (W), Gather (data),
// LSTM/GRU/RNN (W, R) or Add (a rank ≥ 2 position embedding), directly or through
// Transpose, Identity, Cast or Slice (as PyTorch and paddle2onnx export them); biases
// (Gemm C, Conv B, recurrent B, rank-1 Add inputs) are never weights.
// Every float constant of min_elements or more that is not a weight is listed in `skipped`
// with the reason, so nothing is passed over in silence.

export interface WeightUse {
  node: OnnxNode;
  nodeIndex: number;
  /** The graph the consumer is in (the main graph or a subgraph body). */
  scope: OnnxGraph;
  opType: ModelOpType;
  slot: number;
  /** The weight's output-channel axis for this consumer, in the weight's own dims (per-channel scales). */
  channelAxis: number;
  /** The reduction axis (K, or C for Conv), in the weight's own dims: blocks run along it. */
  blockAxis: number;
  /** Ops between the weight and the consumer (Transpose, Identity, Cast), first to last. */
  via: string[];
  /** Those nodes, where they are (a rewrite that replaces the consumer removes Identity ones). */
  viaNodes: { scope: OnnxGraph; nodeIndex: number; output: string }[];
  /** The element type the consumer reads (the weight's, or the last Cast's). */
  valueType: number;
}

export interface WeightCandidate {
  name: string;
  tensor: OnnxTensor;
  /** Index of the Constant node holding the weight (in `scope`), when it is not an initializer. */
  constantNode: number | undefined;
  /** The graph that defines the weight: its DequantizeLinear goes there, visible to nested graphs. */
  scope: OnnxGraph;
  /** "main graph", or where the subgraph is ("If 'cond' then_branch"). */
  scopeLabel: string;
  uses: WeightUse[];
  /** Reads of the weight by anything else: other ops or slots, graph outputs. */
  otherUses: number;
  elements: number;
  /** An IR ≥ 4 initializer also listed as a graph input (initializer_inputs=quantize takes it out of the inputs). */
  alsoInput?: boolean | undefined;
}

export interface Skipped {
  name: string;
  reason: string;
}

export interface FoundWeights {
  candidates: WeightCandidate[];
  skipped: Skipped[];
  /** Bytes of every float initializer and Constant in all graphs (the summary's denominator). */
  floatBytes: number;
  scopes: ModelScopes;
}

const isDefaultDomain = (n: OnnxNode) => n.domain === '' || n.domain === 'ai.onnx';
const FLOAT_TYPES = new Set<number>([DataType.float32, DataType.float16, DataType.bfloat16, DataType.float64]);
/** Ops a weight is followed through: they hand the same values on, maybe transposed, cast or sliced (axes kept). */
const PASS_THROUGH = new Set(['Transpose', 'Identity', 'Cast', 'Slice']);
const MAX_CHAIN = 8;

/** Gemm attributes that decide which rewrites are exact. */
export function gemmAttrs(n: OnnxNode) {
  return {
    alpha: attrFloat(n, 'alpha', 1),
    beta: attrFloat(n, 'beta', 1),
    transA: attrInt(n, 'transA', 0),
    transB: attrInt(n, 'transB', 0),
  };
}

/** The slots of each op that hold weights. */
function weightSlot(opType: string, slot: number): boolean {
  switch (opType) {
    case 'Gather':
      return slot === 0;
    case 'Add':
      return slot === 0 || slot === 1;
    case 'LSTM':
    case 'GRU':
    case 'RNN':
      return slot === 1 || slot === 2;
    case 'MatMul':
    case 'Gemm':
    case 'Conv':
    case 'ConvTranspose':
      return slot === 1;
    default:
      return false;
  }
}

/** Channel and block axes of the tensor as the consumer sees it, or why it is not a weight. */
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
    case 'ConvTranspose':
      // W is [C, M/group, kh, kw, ...]: output channels on axis 1, the reduction runs over C.
      return rank >= 3 ? { channelAxis: 1, blockAxis: 0 } : `ConvTranspose weight of rank ${rank} (ConvTranspose needs rank ≥ 3)`;
    case 'Gather': {
      // An embedding table: one scale per gathered row, blocks along the row.
      if (rank < 2) return `Gather data of rank ${rank} (a lookup table of scalars) is left as it is`;
      const a = attrInt(node, 'axis', 0);
      const axis = a < 0 ? a + rank : a;
      return { channelAxis: axis, blockAxis: axis === rank - 1 ? rank - 2 : rank - 1 };
    }
    case 'Add':
      // A position embedding [..., positions, features]: one scale per position, as a Gather row.
      return rank >= 2 ? { channelAxis: rank - 2, blockAxis: rank - 1 } : `Add of a rank-${rank} constant (a bias) is left as it is`;
    case 'LSTM':
    case 'GRU':
    case 'RNN':
      // W [dirs, gates*hidden, input], R [dirs, gates*hidden, hidden]: one scale per gate row.
      return rank === 3 ? { channelAxis: 1, blockAxis: 2 } : `${opType} weight of rank ${rank} (needs rank 3)`;
  }
}

function transposePerm(n: OnnxNode, rank: number): number[] | undefined {
  const p = n.attributes.find((a) => a.name === 'perm')?.ints?.map(Number);
  const perm = p ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
  if (perm.length !== rank || [...perm].sort((a, b) => a - b).some((v, i) => v !== i)) return undefined;
  return perm;
}

interface Walk {
  uses: WeightUse[];
  other: number;
  /** Why readers were not weight uses, for the skip reason. */
  readers: Set<string>;
  problems: string[];
}

/**
 * Follows one definition's reads. `perm[j]` is the weight's own axis that axis j of the
 * value being read comes from (through Transposes).
 */
function follow(
  scopes: ModelScopes,
  def: Definition,
  perm: number[],
  via: string[],
  viaNodes: WeightUse['viaNodes'],
  valueType: number,
  targets: Set<string>,
  out: Walk,
): void {
  for (const read of def.reads) {
    const n = read.node;
    if (!n) {
      out.other++;
      out.readers.add('a graph output');
      continue;
    }
    const op = n.opType;
    if (isDefaultDomain(n) && weightSlot(op, read.slot)) {
      if (!targets.has(op)) {
        out.other++;
        out.readers.add(`${op} (not in op_types)`);
        continue;
      }
      const l = layout(op as ModelOpType, n, perm.length);
      if (typeof l === 'string') {
        out.other++;
        out.problems.push(l);
        continue;
      }
      out.uses.push({ node: n, nodeIndex: read.nodeIndex, scope: read.scope.graph, opType: op as ModelOpType, slot: read.slot, channelAxis: perm[l.channelAxis]!, blockAxis: perm[l.blockAxis]!, via, viaNodes, valueType });
      continue;
    }
    if (isDefaultDomain(n) && PASS_THROUGH.has(op) && read.slot === 0 && n.outputs.length === 1 && via.length < MAX_CHAIN) {
      let next = perm;
      if (op === 'Transpose') {
        const p = transposePerm(n, perm.length);
        if (!p) {
          out.other++;
          out.readers.add('Transpose (with an invalid perm)');
          continue;
        }
        next = p.map((j) => perm[j]!);
      }
      if (op === 'Cast' && !FLOAT_TYPES.has(attrInt(n, 'to', 0))) {
        out.other++;
        out.readers.add(`Cast to ${dataTypeName(attrInt(n, 'to', 0))}`);
        continue;
      }
      const outDef = scopes.resolve(read.scope, n.outputs[0]!);
      const at = { scope: read.scope.graph, nodeIndex: read.nodeIndex, output: n.outputs[0]! };
      const type = op === 'Cast' ? attrInt(n, 'to', 0) : valueType;
      if (outDef) follow(scopes, outDef, next, [...via, op], [...viaNodes, at], type, targets, out);
      continue;
    }
    out.other++;
    out.readers.add(`${op}${read.slot >= 0 ? ` input ${read.slot}` : ''}`);
  }
}

function bytesPerElement(dataType: number): number {
  return dataType === DataType.float64 ? 8 : (WEIGHT_FLOAT_TYPES.get(dataType) ?? 4);
}

/** The main graph's initializers that are also graph inputs, from IR 4 on (where that says they may be overridden). */
export function initializerInputNames(model: OnnxModel): Set<string> {
  if (model.irVersion < 4) return new Set();
  const inits = new Set(model.graph.initializers.map((t) => t.name));
  return new Set(model.graph.inputs.map((v) => v.name).filter((n) => inits.has(n)));
}

export function findWeights(model: OnnxModel, opts: ModelQuantOptions, scopes: ModelScopes = new ModelScopes(model)): FoundWeights {
  const targets = new Set<string>(opts.opTypes);
  const excludes = opts.exclude.map((p) => ({ p, re: wildcard(p) }));
  const candidates: WeightCandidate[] = [];
  const skipped: Skipped[] = [];
  const small: Skipped[] = [];
  let floatBytes = 0;

  for (const def of scopes.definitions) {
    const tensor = def.tensor;
    if (!tensor || !FLOAT_TYPES.has(tensor.dataType)) continue;
    const { name } = def;
    const scope: Scope = def.scope;
    const where = scope.parent ? ` (in ${scope.label})` : '';
    let elements: number;
    try {
      elements = elementCount(tensor);
    } catch {
      skipped.push({ name, reason: `invalid dims [${tensor.dims.join(', ')}]${where}` });
      continue;
    }
    floatBytes += elements * bytesPerElement(tensor.dataType);
    const walk: Walk = { uses: [], other: 0, readers: new Set(), problems: [] };
    follow(scopes, def, tensor.dims.map((_, i) => i), [], [], tensor.dataType, targets, walk);
    const skip = (reason: string) => skipped.push({ name, reason: reason + where });
    const big = elements >= opts.minElements;
    if (walk.uses.length === 0) {
      if (!big) {
        small.push({ name, reason: `${elements} elements, fewer than min_elements=${opts.minElements}${where}` });
        continue;
      }
      if (walk.problems.length) skip(walk.problems[0]!);
      else if (def.reads.length === 0) skip('not read by any node');
      else {
        skip(
          `read by ${[...walk.readers].join(', ')}, not as a weight (MatMul/Gemm B, Conv/ConvTranspose W, Gather data, LSTM/GRU/RNN W and R, Add of rank ≥ 2): left float`,
        );
      }
      continue;
    }
    const nodeNames = walk.uses.map((u) => u.node.name).filter((n) => n !== '');
    const hit = excludes.find(({ re }) => re.test(name) || nodeNames.some((n) => re.test(n)));
    if (hit) {
      skip(`excluded by '${hit.p}'`);
      continue;
    }
    // From IR 4 on, an initializer that is also a graph input is formally a default the caller
    // may override; exporters (keep_initializers_as_inputs) list every weight so, and
    // onnxruntime warns about them. IR < 4 lists every initializer there: no sign of either.
    const alsoInput = def.alsoInput === true && model.irVersion >= 4;
    if (alsoInput && opts.initializerInputs === 'keep') {
      skip('also a graph input, so callers may override it (initializer_inputs=keep)');
      continue;
    }
    if (!WEIGHT_FLOAT_TYPES.has(tensor.dataType)) {
      skip(`${dataTypeName(tensor.dataType)} weight (float32, float16 and bfloat16 weights are quantized): convert the model to float32 first`);
      continue;
    }
    if (tensor.segmented) {
      skip('stored in segments (TensorProto.segment)');
      continue;
    }
    if (!floatReadable(tensor)) {
      skip(`${dataTypeName(tensor.dataType)} values stored outside raw_data (int32_data): re-save the model with raw data`);
      continue;
    }
    if (!big) {
      skip(`${elements} elements, fewer than min_elements=${opts.minElements}`);
      continue;
    }
    candidates.push({
      name,
      tensor,
      constantNode: def.kind === 'constant' ? def.nodeIndex : undefined,
      scope: scope.graph,
      scopeLabel: scope.label,
      uses: walk.uses,
      otherUses: walk.other,
      elements,
      alsoInput,
    });
  }
  // A model whose float constants are all small still says what happened to them.
  if (candidates.length === 0 && skipped.length === 0) skipped.push(...small);
  return { candidates, skipped, floatBytes, scopes };
}

import type { OnnxModel, OnnxNode } from '../proto/model.js';

// llm-awq does not clip the query and key projections ("due to qk bmm, it is hard to clip
// precisely": auto_clip_block skips q_/k_/query/key/Wqkv by module name). An ONNX graph has no
// such names, so the same layers are found by what their output does: it reaches, through ops
// that only move or rescale values, a MatMul of two activations whose result reaches a
// Softmax (the attention scores Q·Kᵀ). The value projection reaches the other MatMul (the
// one after Softmax) and is clipped; a fused qkv projection reaches the scores and is not.

/** Ops a projection's output passes through on its way to Q·Kᵀ (reshapes, head splits, bias, the 1/√d scale, RoPE's Mul/Add). */
const CARRY = new Set(['Reshape', 'Transpose', 'Split', 'Slice', 'Squeeze', 'Unsqueeze', 'Identity', 'Cast', 'Add', 'Sub', 'Mul', 'Div', 'Concat', 'Gather', 'Neg', 'Expand']);
/** Ops between Q·Kᵀ and its Softmax: scale, mask, bias. */
const TO_SOFTMAX = new Set(['Mul', 'Div', 'Add', 'Sub', 'Where', 'Cast', 'Reshape', 'Transpose', 'Identity']);
const MAX_HOPS = 12;

function readersOf(nodes: readonly OnnxNode[]): Map<string, OnnxNode[]> {
  const by = new Map<string, OnnxNode[]>();
  for (const n of nodes) for (const x of n.inputs) if (x !== '') by.set(x, [...(by.get(x) ?? []), n]);
  return by;
}

function reachesSoftmax(from: OnnxNode, readers: Map<string, OnnxNode[]>): boolean {
  let frontier = [from];
  for (let hop = 0; hop < MAX_HOPS && frontier.length; hop++) {
    const next: OnnxNode[] = [];
    for (const n of frontier) {
      for (const o of n.outputs) {
        for (const r of readers.get(o) ?? []) {
          if (r.opType === 'Softmax') return true;
          if (TO_SOFTMAX.has(r.opType)) next.push(r);
        }
      }
    }
    frontier = next;
  }
  return false;
}

/**
 * The attention-score MatMul that the outputs of `nodes` (a weight's consumers) reach, or
 * undefined when they reach none (then the weight is clipped).
 */
export function attentionScoresReached(model: OnnxModel, nodes: readonly OnnxNode[]): OnnxNode | undefined {
  const g = model.graph;
  const readers = readersOf(g.nodes);
  const constants = new Set(g.initializers.map((t) => t.name));
  for (const n of g.nodes) if (n.opType === 'Constant') for (const o of n.outputs) constants.add(o);
  const seen = new Set<OnnxNode>(nodes);
  let frontier = [...nodes];
  for (let hop = 0; hop < MAX_HOPS && frontier.length; hop++) {
    const next: OnnxNode[] = [];
    for (const n of frontier) {
      for (const o of n.outputs) {
        for (const r of readers.get(o) ?? []) {
          if (seen.has(r)) continue;
          seen.add(r);
          if (r.opType === 'MatMul' && r.inputs.every((x) => !constants.has(x))) {
            if (reachesSoftmax(r, readers)) return r;
            continue;
          }
          if (CARRY.has(r.opType)) next.push(r);
        }
      }
    }
    frontier = next;
  }
  return undefined;
}

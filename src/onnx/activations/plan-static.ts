import type { GraphIndex } from './graph-index.js';
import { ruleFor } from './placement-rules.js';

// Applies the per-op placement rules in graph order and records, per tensor, whether it
// gets a Q/DQ pair and whose parameters it uses. Nothing is written here: emit-static.ts
// turns the plan into nodes once the ranges are known.

export interface ActivationMark {
  name: string;
  /** own: parameters from its own calibrated range; shared: the root tensor's parameters. */
  kind: 'own' | 'shared';
  root: string;
  fixedRange?: { min: number; max: number } | undefined;
  /** The node whose rule asked for the pair (for the report). */
  node: string;
  opType: string;
}

export interface WeightMark {
  name: string;
  axis: number | undefined;
  nodes: number[];
}

export interface BiasMark {
  name: string;
  node: number;
  input: string;
  weight: string;
  beta: number;
}

export interface StaticPlan {
  tensors: Map<string, ActivationMark>;
  /** Float constants read as activations (Add/Mul operands): stored in the activation type. */
  constantActivations: Set<string>;
  weights: Map<string, WeightMark>;
  biases: BiasMark[];
  /** Relu/Clip node index → the producer whose Q now clamps in its place. */
  folded: Map<number, number>;
  excluded: Set<number>;
  /** Nodes whose rule was applied. */
  quantizedNodes: Set<number>;
}

export interface PlanOptions {
  /** Node indices kept float: no rule runs for them and they read float tensors. */
  exclude?: ReadonlySet<number> | undefined;
  /** Symmetric activations cannot fold Relu (a zero point mid-range does not clamp at 0). */
  symmetric?: boolean | undefined;
}

function nodeName(g: GraphIndex, i: number): string {
  return g.nodes[i]!.name || `${g.nodes[i]!.opType}_${i}`;
}

function clipFoldable(g: GraphIndex, i: number): boolean {
  const n = g.nodes[i]!;
  if (n.opType === 'Relu') return true;
  // Clip(min ≤ 0, max): the producer's Q saturates at the calibrated range, inside [min, max].
  const min = n.inputs[1] ? g.scalar(n.inputs[1]) : (n.attributes.find((a) => a.name === 'min')?.f ?? undefined);
  if (n.inputs[1] && min === undefined) return false;
  if (n.inputs[2] && g.scalar(n.inputs[2]) === undefined) return false;
  return min === undefined || min <= 0;
}

export function planStatic(g: GraphIndex, opts: PlanOptions = {}): StaticPlan {
  const exclude = opts.exclude ?? new Set<number>();
  const plan: StaticPlan = {
    tensors: new Map(),
    constantActivations: new Set(),
    weights: new Map(),
    biases: [],
    folded: new Map(),
    excluded: new Set(exclude),
    quantizedNodes: new Set(),
  };
  const mark = (name: string, m: Omit<ActivationMark, 'name'>) => {
    if (!name || plan.tensors.has(name) || !g.isFloat(name)) return;
    plan.tensors.set(name, { name, ...m });
  };
  g.nodes.forEach((n, i) => {
    if (exclude.has(i)) return;
    const rule = ruleFor(n);
    const marks = rule?.(n, g);
    if (!marks) return;
    const who = { node: nodeName(g, i), opType: n.opType };
    if (marks.removable) {
      const t = n.inputs[0] ?? '';
      const p = g.producer.get(t);
      const input = plan.tensors.get(t);
      if (!input) return;
      plan.quantizedNodes.add(i);
      const out = n.outputs[0] ?? '';
      const foldable =
        !opts.symmetric &&
        input.kind === 'own' &&
        p !== undefined &&
        g.readers(t).length === 1 &&
        !g.graphOutputs.has(t) &&
        g.isFloat(out) &&
        clipFoldable(g, i);
      if (foldable) {
        plan.tensors.delete(t);
        plan.folded.set(i, p);
        mark(out, { kind: 'own', root: out, ...who, node: input.node, opType: input.opType });
      } else mark(out, { kind: 'own', root: out, ...who });
      return;
    }
    plan.quantizedNodes.add(i);
    for (const slot of marks.activations) {
      const name = n.inputs[slot];
      if (!name || !g.isFloat(name)) continue;
      if (g.isConstant(name)) plan.constantActivations.add(name);
      else mark(name, { kind: 'own', root: name, ...who });
    }
    for (const w of marks.weights) {
      const name = n.inputs[w.slot]!;
      if (!g.isFloat(name)) continue;
      const prev = plan.weights.get(name);
      if (prev) {
        prev.nodes.push(i);
        if (prev.axis !== w.axis) prev.axis = undefined;
      } else plan.weights.set(name, { name, axis: w.axis, nodes: [i] });
    }
    if (marks.bias) {
      const b = marks.bias;
      plan.biases.push({ name: n.inputs[b.slot]!, node: i, input: n.inputs[b.inputSlot]!, weight: n.inputs[b.weightSlot]!, beta: b.beta });
    }
    if (marks.outputs === 'own') {
      for (const o of n.outputs) mark(o, { kind: 'own', root: o, fixedRange: marks.outputRange, ...who });
    } else if (marks.outputs === 'share') {
      const src = plan.tensors.get(n.inputs[0] ?? '');
      if (src) for (const o of n.outputs) mark(o, { kind: 'shared', root: src.root, ...who });
    }
  });
  for (const w of plan.weights.keys()) plan.constantActivations.delete(w);
  // A pair nobody quantized reads (every reader kept float, not a graph output) is dropped.
  for (const [name, m] of plan.tensors) {
    const live = g.graphOutputs.has(name) || g.readers(name).some((r) => !exclude.has(r) && !plan.folded.has(r));
    if (!live && m.kind === 'own' && ![...plan.tensors.values()].some((o) => o.kind === 'shared' && o.root === name)) plan.tensors.delete(name);
  }
  return plan;
}

/** Every tensor a plan could give its own range, whatever is later excluded: what calibration measures. */
export function calibrationTensors(g: GraphIndex): string[] {
  const names = new Set<string>();
  g.nodes.forEach((n) => {
    if (!ruleFor(n)) return;
    for (const t of [...n.inputs, ...n.outputs]) if (t && g.isFloat(t) && !g.isConstant(t)) names.add(t);
  });
  return [...names];
}

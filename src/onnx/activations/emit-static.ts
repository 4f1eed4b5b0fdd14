import { rint } from '../../core/round.js';
import { attrs, floatTensor, node, tensor } from '../graph/build.js';
import { GraphEdit } from '../graph/edit.js';
import { AttrType, DataType, type OnnxModel, type OnnxNode } from '../proto/model.js';
import { readFloat32, type ExternalData } from '../proto/tensor-data.js';
import { emitQdq } from '../weights/emit-qdq.js';
import type { GraphIndex } from './graph-index.js';
import type { StaticPlan } from './plan-static.js';
import { ACTIVATION_ELEM_TYPE, activationRange, computeScaleZp, type ActivationParams, type ActivationType } from './qparams.js';
import type { StaticBias, StaticWeight } from './static-weights.js';

// The plan written as a graph. Each quantized tensor T keeps its name: its producer now
// writes T_QuantizeLinear_Input, and Q → DQ restores T, so every reader (graph outputs,
// subgraphs, value_info) is unchanged and there is one Q per tensor however many read it.
// Readers kept float (excluded nodes) read the pre-Q tensor. Per-channel DQ below opset 13,
// 16-bit Q/DQ below opset 21 and any Q/DQ below opset 10 use com.microsoft's ops, which
// take the same inputs and `axis` at any default opset: the model's opset never changes.

const MS = 'com.microsoft';

export interface EmitResult {
  model: OnnxModel;
  /** Q/DQ pairs written for activations. */
  pairs: number;
  domainsUsed: string[];
  /** Tensors without a producer (graph inputs): the name their dequantized copy has. */
  dequantizedAs: Map<string, string>;
}

function storeInts(type: ActivationType, values: ArrayLike<number>): ArrayBufferView {
  switch (type) {
    case 'uint8':
      return Uint8Array.from(values);
    case 'int8':
      return Int8Array.from(values);
    case 'int16':
      return Int16Array.from(values);
  }
}

export function emitStatic(
  g: GraphIndex,
  plan: StaticPlan,
  params: ReadonlyMap<string, ActivationParams>,
  weights: ReadonlyMap<string, StaticWeight>,
  biases: readonly StaticBias[],
  type: ActivationType,
  external?: ExternalData,
): EmitResult {
  const edit = new GraphEdit(g.model);
  const used = new Set<string>();
  const domain = (needs: number) => (g.opset >= needs ? '' : MS);
  const actDomain = domain(type === 'int16' ? 21 : 10);
  const use = (d: string) => {
    if (d) used.add(d);
    return d;
  };
  const outputs = new Map<number, Map<string, string>>();
  const inputs = new Map<number, Map<string, string>>();
  const renameOut = (i: number, from: string, to: string) => outputs.set(i, (outputs.get(i) ?? new Map()).set(from, to));
  const rewireIn = (i: number, from: string, to: string) => inputs.set(i, (inputs.get(i) ?? new Map()).set(from, to));
  const elem = ACTIVATION_ELEM_TYPE[type];

  // Folded Relu/Clip: the producer writes the activation's output name itself.
  const foldedInto = new Map<string, number>();
  for (const [r, p] of plan.folded) {
    const relu = g.nodes[r]!;
    renameOut(p, relu.inputs[0]!, relu.outputs[0]!);
    foldedInto.set(relu.outputs[0]!, p);
    edit.replaceNode(r, []);
  }

  const paramNames = new Map<string, { s: string; z: string }>();
  const paramsOf = (root: string) => {
    let names = paramNames.get(root);
    if (!names) {
      const p = params.get(root)!;
      names = { s: edit.unique(`${root}_scale`), z: edit.unique(`${root}_zero_point`) };
      edit.addInitializers([floatTensor(names.s, [], Float32Array.of(p.scale)), tensor(names.z, elem, [], storeInts(type, [p.zeroPoint]))]);
      paramNames.set(root, names);
    }
    return names;
  };

  let pairs = 0;
  const dequantizedAs = new Map<string, string>();
  for (const m of plan.tensors.values()) {
    if (!params.has(m.root)) continue;
    const { s, z } = paramsOf(m.root);
    const d = use(actDomain);
    const producer = foldedInto.get(m.name) ?? g.producer.get(m.name);
    const qName = edit.unique(`${m.name}_QuantizeLinear`);
    const dqName = edit.unique(`${m.name}_DequantizeLinear`);
    const qOut = edit.unique(`${m.name}_QuantizeLinear_Output`);
    pairs++;
    if (producer !== undefined) {
      const pre = edit.unique(`${m.name}_QuantizeLinear_Input`);
      renameOut(producer, m.name, pre);
      edit.insertAfter(producer, node('QuantizeLinear', [pre, s, z], [qOut], { name: qName, domain: d }));
      edit.insertAfter(producer, node('DequantizeLinear', [qOut, s, z], [m.name], { name: dqName, domain: d }));
      for (const r of g.readers(m.name)) if (plan.excluded.has(r)) rewireIn(r, m.name, pre);
    } else {
      const dqOut = edit.unique(`${m.name}_DequantizeLinear_Output`);
      dequantizedAs.set(m.name, dqOut);
      edit.prepend(node('QuantizeLinear', [m.name, s, z], [qOut], { name: qName, domain: d }));
      edit.prepend(node('DequantizeLinear', [qOut, s, z], [dqOut], { name: dqName, domain: d }));
      for (const r of g.readers(m.name)) if (!plan.excluded.has(r)) rewireIn(r, m.name, dqOut);
    }
  }

  for (const name of plan.constantActivations) {
    const c = g.constants.get(name)!;
    const x = readFloat32(c.tensor, external);
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of x) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    const p = computeScaleZp(lo, hi, type);
    const { qMin, qMax } = activationRange(type);
    const q = Array.from(x, (v) => Math.min(qMax, Math.max(qMin, rint(Math.fround(v / p.scale)) + p.zeroPoint)));
    const qName = edit.unique(`${name}_quantized`);
    const sName = edit.unique(`${name}_scale`);
    const zName = edit.unique(`${name}_zero_point`);
    edit.replaceWeight({ name, constantNode: c.constantNode }, [tensor(qName, elem, c.tensor.dims, storeInts(type, q)), floatTensor(sName, [], Float32Array.of(p.scale)), tensor(zName, elem, [], storeInts(type, [p.zeroPoint]))]);
    if (c.constantNode === undefined) edit.dropInput(name);
    edit.prepend(node('DequantizeLinear', [qName, sName, zName], [name], { name: edit.unique(`${name}_DequantizeLinear`), domain: use(actDomain) }));
  }

  for (const sw of weights.values()) {
    const c = g.constants.get(sw.mark.name)!;
    const d = sw.plan.granularity === 'per_channel' ? domain(13) : domain(10);
    emitQdq(edit, { name: sw.mark.name, tensor: c.tensor, constantNode: c.constantNode }, sw.plan, sw.w, use(d));
  }

  const betaOne = new Set<number>();
  const biasReaders = new Map<string, number>();
  for (const b of biases) {
    const d = use(b.perChannel ? domain(13) : domain(10));
    const qName = edit.unique(`${b.mark.name}_quantized`);
    const sName = edit.unique(`${b.mark.name}_quantized_scale`);
    const zName = edit.unique(`${b.mark.name}_quantized_zero_point`);
    const out = edit.unique(`${b.mark.name}_DequantizeLinear_Output`);
    const n = b.scale.length;
    edit.addInitializers([tensor(qName, DataType.int32, [b.q.length], b.q), floatTensor(sName, b.perChannel ? [n] : [], b.scale), tensor(zName, DataType.int32, b.perChannel ? [n] : [], new Int32Array(n))]);
    edit.prepend(node('DequantizeLinear', [qName, sName, zName], [out], { name: edit.unique(`${b.mark.name}_DequantizeLinear`), domain: d, attributes: b.perChannel ? [attrs.int('axis', 0)] : [] }));
    rewireIn(b.mark.node, b.mark.name, out);
    if (b.mark.beta !== 1) betaOne.add(b.mark.node);
    biasReaders.set(b.mark.name, (biasReaders.get(b.mark.name) ?? 0) + 1);
  }
  for (const [name, count] of biasReaders) {
    if (count === g.readers(name).length && !g.graphOutputs.has(name) && !plan.weights.has(name)) {
      edit.replaceWeight({ name, constantNode: g.constants.get(name)!.constantNode }, []);
      edit.forgetName(name);
    }
  }

  for (const i of new Set([...outputs.keys(), ...inputs.keys(), ...betaOne])) {
    if (plan.folded.has(i)) continue;
    const n = g.nodes[i]!;
    const ins = inputs.get(i);
    const outs = outputs.get(i);
    const rewritten: OnnxNode = {
      ...n,
      src: undefined,
      inputs: n.inputs.map((x) => ins?.get(x) ?? x),
      outputs: n.outputs.map((o) => follow(outs, o)),
      attributes: betaOne.has(i) ? [...n.attributes.filter((a) => a.name !== 'beta'), attrs.float('beta', 1)] : n.attributes,
    };
    edit.replaceNode(i, [rewritten]);
  }
  for (const d of used) edit.requireOpset(d, 1);
  const sources = new Set(biases.map((b) => g.constants.get(b.mark.name)!.tensor.name));
  return { model: pruneInitializers(edit.apply(), sources), pairs, domainsUsed: [...used], dequantizedAs };
}

/**
 * PyTorch shares equal biases through Identity nodes; once every alias reads its int32 copy,
 * the float initializer behind them is read by nothing and is dropped (not when subgraphs
 * might still read it by name).
 */
function pruneInitializers(m: OnnxModel, candidates: ReadonlySet<string>): OnnxModel {
  const g = m.graph;
  if (g.nodes.some((n) => n.attributes.some((a) => a.type === AttrType.graph || a.type === AttrType.graphs))) return m;
  const read = new Set([...g.nodes.flatMap((n) => n.inputs), ...g.outputs.map((o) => o.name)]);
  const drop = new Set([...candidates].filter((name) => !read.has(name)));
  if (!drop.size) return m;
  return { ...m, graph: { ...g, initializers: g.initializers.filter((t) => !drop.has(t.name)), inputs: g.inputs.filter((v) => !drop.has(v.name)) } };
}

/** An output renamed twice (folded Relu, then its Q) ends at the last name. */
function follow(map: Map<string, string> | undefined, name: string): string {
  let n = name;
  for (let k = 0; map?.has(n) && k < 4; k++) n = map.get(n)!;
  return n;
}

import { dequantizeWith } from '../../core/quantize.js';
import { axisLayout } from '../../core/shape.js';
import { floatTensor, node } from '../graph/build.js';
import { attrInt, DataType, type OnnxModel, type OnnxNode, type OnnxTensor } from '../proto/model.js';
import { readFloat32 } from '../proto/tensor-data.js';
import type { ExternalData } from '../proto/tensor-data.js';
import type { WeightCandidate } from './find-weights.js';
import type { ModelQuantOptions } from './options.js';
import type { WeightPlan } from './plan.js';
import { proxyLoss, type ProxyStats } from './proxy-loss.js';
import { quantizeWeight } from './quantize-weight.js';
import { uniqueIn } from '../graph/edit.js';
import { applyClip, scaledHessian, searchClip, type ClipChoice } from './awq-clip.js';
import { weightRows } from './gptq-weight.js';
import { applyClipConv, searchClipConv } from './conv-columns.js';
import { convProxyLoss, type ConvGeometry } from './gptq-conv.js';
import { convGroupLosses, scaleConvGroups, searchClipConvGroups } from './awq-conv-groups.js';

// method=awq (AWQ, arXiv 2306.00978; llm-awq awq/quantize/auto_scale.py): per input channel
// k a scale s_k = mean|x_k|^α, normalized by √(max s · min s); the weight's rows along K are
// multiplied by s before rounding to nearest and the activation divided by s, so salient
// channels (large |x|) get finer steps. α runs over 0, 0.05, …, 0.95 (a grid of 20) and the
// one with the lowest output error on the calibration activations wins, per activation:
// weights that read the same activation (q/k/v, gate/up) share one s and are judged together.
// The error is ‖X(Ŵ − W)‖² summed over those weights, from the K×K XᵀX of every calibration
// row (llm-awq measures the module's output on its samples; α = 0 is plain rtn, so the
// search never ends worse than rtn by this measure).
//
// 1/s goes into the op that produces the activation when that is exact and touches nothing
// else: a LayerNormalization over the last axis (its scale and bias ÷ s) or a Mul by a
// constant along the last axis (the constant ÷ s), whose output only these weights' nodes
// read. Anywhere else a Mul by 1/s is inserted before them. Either way the float graph
// computes the same function (to float rounding).
//
// Grouped Conv (1 < group < C): each conv group is its own layer, so α is searched per conv
// group and s normalized per group (awq-conv-groups.ts); the rest (fold, clip) is the same.

export const AWQ_GRID = 20;
const MIN_SCALE = 1e-4;

export interface AwqMember {
  c: WeightCandidate;
  plan: WeightPlan;
  kAxis: number;
  values: Float32Array;
  /** The clip search's choice on W·s (awq-clip.ts), once made. */
  clip?: ClipChoice | undefined;
  /** Why the clip search was not run on this weight. */
  noClip?: string | undefined;
  /** A Conv weight [M, C/group, ...kernel]: its error is measured on the input patches' XᵀX (one per conv group). */
  conv?: ConvGeometry | undefined;
  /** Its own statistics when they differ from the group's (Convs of different kernels reading one activation). */
  stats?: ProxyStats | undefined;
}

/** The member's weight with its chosen clip applied (values in the weight's own layout). */
export function clipped(m: AwqMember, values: Float32Array): Float32Array {
  if (!m.clip) return values;
  const dims = m.c.tensor.dims;
  return m.conv ? applyClipConv(values, dims, m.clip, m.plan.granularity === 'per_group') : applyClip(values, dims, m.kAxis, m.clip);
}

/** ‖X·ΔW‖² of a member: over its rows' K features, or over a Conv's patch features. */
function memberLoss(m: AwqMember, wHat: Float32Array, stats: ProxyStats): number {
  const dims = m.c.tensor.dims;
  const own = m.stats ?? stats;
  return m.conv ? convProxyLoss(m.values, wHat, dims, m.conv, own.xtx!) : proxyLoss(m.values, wHat, dims, m.kAxis, own);
}

/** s per input channel spread over a Conv's patch features (c · P + p). */
function patchScales(s: Float32Array, dims: readonly number[]): Float32Array {
  const p = dims.slice(2).reduce((a, b) => a * b, 1);
  const out = new Float32Array(s.length * p);
  for (let c = 0; c < s.length; c++) out.fill(s[c]!, c * p, (c + 1) * p);
  return out;
}

export interface AwqChoice {
  /** The α of s; for a per-conv-group search (groupAlphas), their mean. */
  alpha: number;
  /** Grouped Conv: the α each conv group chose (s normalized per group). */
  groupAlphas?: number[] | undefined;
  /** Per input channel, normalized. */
  s: Float32Array;
  loss: number;
  rtnLoss: number;
}

/** Whether s is all ones (rtn was best everywhere): nothing to fold. */
export function isIdentity(choice: AwqChoice): boolean {
  return choice.groupAlphas ? choice.groupAlphas.every((a) => a === 0) : choice.alpha === 0;
}

/** A member's weight multiplied (or divided) by s along its input channels, in its own layout (per conv group for a grouped Conv). */
export function scaleMember(m: AwqMember, values: Float32Array, s: Float32Array, divide = false): Float32Array {
  const dims = m.c.tensor.dims;
  if (m.conv && m.conv.group > 1) return scaleConvGroups(values, dims, m.conv.group, s, divide);
  return scaleAlongK(values, dims, m.kAxis, s, divide);
}

/** W with its K axis multiplied (or divided) by s, in the weight's own layout. */
export function scaleAlongK(values: Float32Array, dims: readonly number[], kAxis: number, s: Float32Array, divide = false): Float32Array {
  const { outer, len, inner } = axisLayout(dims, kAxis);
  const out = new Float32Array(values.length);
  for (let o = 0; o < outer; o++) {
    for (let k = 0; k < len; k++) {
      const base = (o * len + k) * inner;
      const f = s[k]!;
      for (let i = 0; i < inner; i++) out[base + i] = divide ? values[base + i]! / f : values[base + i]! * f;
    }
  }
  return out;
}

export function awqScales(meanAbs: Float64Array, alpha: number): Float32Array {
  const k = meanAbs.length;
  const s = new Float64Array(k);
  let max = 0;
  let min = Infinity;
  for (let i = 0; i < k; i++) {
    const v = Math.max(meanAbs[i]! ** alpha, MIN_SCALE);
    s[i] = v;
    max = Math.max(max, v);
    min = Math.min(min, v);
  }
  const norm = Math.sqrt(max * min);
  return Float32Array.from(s, (v) => v / norm);
}

/** What rounding the scaled (and clipped, once the clip is chosen) weight gives, brought back to the original's scale (Ŵ = Q(clip(W·s))/s). */
export function awqReconstruction(m: AwqMember, s: Float32Array, opts: ModelQuantOptions): Float32Array {
  const dims = m.c.tensor.dims;
  const scaled = clipped(m, scaleMember(m, m.values, s));
  const w = quantizeWeight(scaled, dims, m.plan, { ...opts, method: 'rtn' });
  return scaleMember(m, dequantizeWith(w.q, w.params), s, true);
}

/** The conv group count every member shares when it is > 1 (a per-group search applies), else undefined. */
function sharedConvGroups(members: readonly AwqMember[]): number | undefined {
  const g = members[0]?.conv?.group ?? 1;
  return g > 1 && members.every((m) => m.conv?.group === g) ? g : undefined;
}

/** s over all C channels with each conv group's own α and normalization. */
function groupScales(meanAbs: Float64Array, alphas: readonly number[]): Float32Array {
  const cg = meanAbs.length / alphas.length;
  const s = new Float32Array(meanAbs.length);
  alphas.forEach((a, j) => s.set(awqScales(meanAbs.subarray(j * cg, (j + 1) * cg), a), j * cg));
  return s;
}

/**
 * The scale search per conv group: every α on the grid is tried on all groups at once (one
 * rounding of each weight per α), and each group keeps the α of its lowest summed loss over
 * the members. Sound because group j's loss depends on group j's s alone.
 */
function searchAwqConvGroups(members: readonly AwqMember[], group: number, meanAbs: Float64Array, stats: ProxyStats, opts: ModelQuantOptions): AwqChoice {
  const bestLoss = new Float64Array(group).fill(Infinity);
  const bestAlpha = new Array<number>(group).fill(0);
  let rtnLoss = 0;
  for (let g = 0; g < AWQ_GRID; g++) {
    const alpha = g / AWQ_GRID;
    const s = groupScales(meanAbs, new Array<number>(group).fill(alpha));
    const loss = new Float64Array(group);
    for (const m of members) {
      const parts = convGroupLosses(m.values, awqReconstruction(m, s, opts), m.c.tensor.dims, group, m.conv!.patchK, (m.stats ?? stats).xtx!);
      for (let j = 0; j < group; j++) loss[j]! += parts[j]!;
    }
    for (let j = 0; j < group; j++) {
      if (g === 0) rtnLoss += loss[j]!;
      if (loss[j]! < bestLoss[j]!) {
        bestLoss[j] = loss[j]!;
        bestAlpha[j] = alpha;
      }
    }
  }
  const s = groupScales(meanAbs, bestAlpha);
  // The loss at the assembled s, measured (not the sum of the per-group minima it equals).
  let loss = 0;
  for (const m of members) loss += memberLoss(m, awqReconstruction(m, s, opts), stats);
  return { alpha: bestAlpha.reduce((a, b) => a + b, 0) / group, groupAlphas: bestAlpha, s, loss, rtnLoss };
}

export function searchAwq(members: readonly AwqMember[], meanAbs: Float64Array, stats: ProxyStats, opts: ModelQuantOptions): AwqChoice {
  const convGroups = sharedConvGroups(members);
  if (convGroups !== undefined) return searchAwqConvGroups(members, convGroups, meanAbs, stats, opts);
  // One α for all (a MatMul's or group-1 Conv's K, or Convs of different group counts on one activation).
  let best: AwqChoice | undefined;
  let rtnLoss = 0;
  for (let g = 0; g < AWQ_GRID; g++) {
    const alpha = g / AWQ_GRID;
    const s = awqScales(meanAbs, alpha);
    let loss = 0;
    for (const m of members) loss += memberLoss(m, awqReconstruction(m, s, opts), stats);
    if (g === 0) rtnLoss = loss;
    if (!best || loss < best.loss) best = { alpha, s, loss, rtnLoss: 0 };
  }
  return { ...best!, rtnLoss };
}

/**
 * The clip search (awq-clip.ts) on each member's W·s with the chosen s, on the XᵀX of X/s;
 * members for which skip gives a reason keep their plain min-max grid. Returns the group's
 * proxy loss after clipping (the same measure as the scale search's).
 */
export function clipAwqMembers(members: readonly AwqMember[], choice: AwqChoice, stats: ProxyStats, opts: ModelQuantOptions, skip: (m: AwqMember) => string | undefined): number {
  let loss = 0;
  for (const m of members) {
    const own = (m.stats ?? stats).xtx!;
    const why = skip(m);
    if (why) m.noClip = why;
    else {
      const dims = m.c.tensor.dims;
      const scaled = scaleMember(m, m.values, choice.s);
      const perGroup = m.plan.granularity === 'per_group';
      if (m.conv && m.conv.group > 1) m.clip = searchClipConvGroups(scaled, dims, m.conv.group, perGroup ? m.plan.groupSize : undefined, own, choice.s, m.plan.bits, opts.scheme);
      else if (m.conv) m.clip = searchClipConv(scaled, dims, perGroup ? m.plan.groupSize : undefined, scaledHessian(own, patchScales(choice.s, dims)), m.plan.bits, opts.scheme);
      else {
        const { w, rows, k } = weightRows(scaled, dims, m.kAxis);
        m.clip = searchClip(w, rows, k, perGroup ? m.plan.groupSize : k, own, m.plan.bits, opts.scheme, choice.s);
      }
    }
    loss += memberLoss(m, awqReconstruction(m, choice.s, opts), stats);
  }
  return loss;
}

export interface AwqGroup {
  activation: string;
  members: AwqMember[];
  choice: AwqChoice;
  /** The proxy loss after the clip search (undefined when it did not run). */
  clippedLoss?: number | undefined;
}

export interface AwqFolded {
  model: OnnxModel;
  /** Per activation, where 1/s went. */
  where: Map<string, string>;
}

function readers(model: OnnxModel, name: string): OnnxNode[] {
  return model.graph.nodes.filter((n) => n.inputs.includes(name));
}

function hasSubgraphs(model: OnnxModel): boolean {
  return model.graph.nodes.some((n) => n.attributes.some((a) => a.g || a.graphs?.length));
}

/** A [K] (or [1, …, 1, K]) float32 initializer read by this node alone, or undefined. */
function ownVector(model: OnnxModel, name: string, k: number, by: OnnxNode): OnnxTensor | undefined {
  const t = model.graph.initializers.find((x) => x.name === name);
  if (!t || t.dataType !== DataType.float32 || t.dims[t.dims.length - 1] !== k || t.dims.slice(0, -1).some((d) => d !== 1)) return undefined;
  if (model.graph.inputs.some((v) => v.name === name)) return undefined;
  if (readers(model, name).some((n) => n !== by)) return undefined;
  return t;
}

/**
 * The model with every group's weights multiplied by s along K and 1/s folded or inserted;
 * the input model is not modified.
 */
export function foldAwq(model: OnnxModel, groups: readonly AwqGroup[], external?: ExternalData): AwqFolded {
  const g = model.graph;
  const nodes = g.nodes.slice();
  const inits = new Map(g.initializers.map((t, i) => [t.name, i]));
  const initializers = g.initializers.slice();
  const where = new Map<string, string>();
  const taken = new Set<string>([...g.initializers.map((t) => t.name), ...g.nodes.flatMap((n) => n.outputs), ...g.inputs.map((v) => v.name), ...g.nodes.map((n) => n.name)]);
  const fresh = (base: string) => uniqueIn(taken, base);
  const replaceInit = (t: OnnxTensor, data: Float32Array) => {
    initializers[inits.get(t.name)!] = floatTensor(t.name, t.dims, data);
  };
  const inserted: { before: OnnxNode; node: OnnxNode }[] = [];
  const subgraphs = hasSubgraphs(model);
  for (const grp of groups) {
    const { s } = grp.choice;
    if (isIdentity(grp.choice)) continue;
    const k = s.length;
    for (const m of grp.members) replaceInit(m.c.tensor, scaleMember(m, m.values, s));
    const t = grp.activation;
    const consumers = new Set(grp.members.flatMap((m) => m.c.uses.map((u) => u.node)));
    const producer = g.nodes.find((n) => n.outputs.includes(t));
    const onlyOurs = !subgraphs && !g.outputs.some((v) => v.name === t) && readers(model, t).every((n) => consumers.has(n));
    const isDefault = (n: OnnxNode) => n.domain === '' || n.domain === 'ai.onnx';
    let folded = false;
    // A Conv's input is [N, C, ...spatial]: 1/s goes in as a Mul by [C, 1, …] (the folds below are along the last axis).
    const convRank = grp.members[0]!.conv ? grp.members[0]!.c.tensor.dims.length : 0;
    if (!convRank && producer && onlyOurs && isDefault(producer) && producer.outputs[0] === t) {
      if (producer.opType === 'LayerNormalization' && attrInt(producer, 'axis', -1) === -1) {
        const scale = ownVector(model, producer.inputs[1] ?? '', k, producer);
        const biasName = producer.inputs[2] ?? '';
        const bias = biasName ? ownVector(model, biasName, k, producer) : undefined;
        if (scale && (biasName === '' || bias) && scale.name !== biasName) {
          replaceInit(scale, scaleAlongK(readFloat32(scale, external), scale.dims, scale.dims.length - 1, s, true));
          if (bias) replaceInit(bias, scaleAlongK(readFloat32(bias, external), bias.dims, bias.dims.length - 1, s, true));
          folded = true;
          where.set(t, `1/s folded into LayerNormalization '${producer.name}' (scale${bias ? ' and bias' : ''})`);
        }
      } else if (producer.opType === 'Mul') {
        const slot = [0, 1].find((i) => ownVector(model, producer.inputs[i] ?? '', k, producer) && producer.inputs[1 - i] !== producer.inputs[i]);
        if (slot !== undefined) {
          const c = ownVector(model, producer.inputs[slot]!, k, producer)!;
          replaceInit(c, scaleAlongK(readFloat32(c, external), c.dims, c.dims.length - 1, s, true));
          folded = true;
          where.set(t, `1/s folded into Mul '${producer.name}' (its constant)`);
        }
      }
    }
    if (folded) continue;
    const inv = fresh(`${t}_awq_inv_scale`);
    const out = fresh(`${t}_awq`);
    initializers.push(floatTensor(inv, convRank ? [k, ...new Array<number>(convRank - 2).fill(1)] : [k], Float32Array.from(s, (v) => 1 / v)));
    const first = nodes.find((n) => consumers.has(n))!;
    inserted.push({ before: first, node: node('Mul', [t, inv], [out], { name: fresh(`${t}_awq_Mul`) }) });
    for (let i = 0; i < nodes.length; i++) {
      const n = nodes[i]!;
      if (!consumers.has(n)) continue;
      const { src: _src, ...rest } = n;
      nodes[i] = { ...rest, inputs: n.inputs.map((x, j) => (j === 0 && x === t ? out : x)) };
      consumers.delete(n);
      consumers.add(nodes[i]!);
    }
    where.set(t, `Mul by 1/s inserted (${producer ? `${producer.opType} '${producer.name}'` : 'a graph input'} is not a LayerNormalization or constant Mul read by these weights alone)`);
  }
  // Each inserted Mul goes right before the first node that reads its output.
  for (const { before, node: mul } of inserted) {
    const at = nodes.findIndex((n) => n === before || (n.name === before.name && n.outputs[0] === before.outputs[0]));
    nodes.splice(at, 0, mul);
  }
  return { model: { ...model, graph: { ...g, nodes, initializers } }, where };
}

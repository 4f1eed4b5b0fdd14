import { performance } from 'node:perf_hooks';
import { dequantizeWith } from '../../core/quantize.js';
import { checkpoint, type CancelFlag } from '../../pool/cancel.js';
import { defaultOpset, DataType, type OnnxModel } from '../proto/model.js';
import { readFloat, type ExternalData } from '../proto/tensor-data.js';
import type { ExternalDataFiles } from '../runtime/collect.js';
import type { HeldBackOutput } from '../runtime/held-back.js';
import { inProcess, MeasurementLost, type Comparison, type FloatRuns } from './float-runs.js';
import { awqReconstruction, clipAwqMembers, clipped, foldAwq, isIdentity, searchAwq, type AwqGroup, type AwqMember } from '../weights/awq.js';
import { clipSummary, type ClipChoice } from '../weights/awq-clip.js';
import { attentionScoresReached } from '../weights/attention-scores.js';
import { findWeights, type WeightCandidate } from '../weights/find-weights.js';
import { quantizeImatrix } from '../weights/imatrix.js';
import type { DataAwareMethod, ModelQuantOptions } from '../weights/options.js';
import { planWeight, type WeightPlan } from '../weights/plan.js';
import { lossReduction, proxyLoss } from '../weights/proxy-loss.js';
import { quantizeModel, type ModelProgress, type ModelQuantResult, type WeightOverride } from '../weights/quantize-model.js';
import { quantizeWeight } from '../weights/quantize-weight.js';
import { statsKey, weightInputs, type WeightInputs } from '../weights/weight-inputs.js';
import { convProxyLoss, gptqConvProblem, quantizeGptqConv } from '../weights/gptq-conv.js';
import { quantizeGptq } from '../weights/gptq-weight.js';
import { errorBetween } from '../weights/weight-error.js';
import { splitSamples, type CalibrationSamples } from './calibration-data.js';
import { defaultHeldBack } from './quantize-static.js';
import { batchesFor, sumStats, type InputStats, type StatsPasses, type StatsRequest } from './weight-stats.js';

// method=imatrix|gptq|awq on a model: gather the statistics of each weight's input
// activations on the calibration samples (float model, onnxruntime), fit the weights with
// them, write the model with the usual emitters, and measure the quantized model against the
// float one on held-back samples. K×K sums are alive one batch at a time (HESSIAN_MAX_BYTES):
// each batch's weights are fitted (GPTQ) or searched (AWQ) as soon as its samples have run,
// and only the results, the size of the quantized weights, are kept.

export const DEFAULT_HESSIAN_MAX_BYTES = 512 * 2 ** 20;

export interface DataAwareRequest {
  method: DataAwareMethod;
  weights: ModelQuantOptions;
  heldBack?: number | undefined;
  maxHessianBytes?: number | undefined;
}

export interface DataAwareHooks {
  external?: ExternalData | undefined;
  externalData?: ExternalDataFiles | undefined;
  cancel?: CancelFlag | undefined;
  onCalibrating?: ((done: number, total: number) => void) | undefined;
  onProgress?: ((p: ModelProgress) => void) | undefined;
  /** Where the onnxruntime runs happen: this thread unless told (the pipeline's is the onnxruntime host). */
  runs?: FloatRuns | undefined;
}

export interface AwqClipRow {
  weight: string;
  clipped: boolean;
  /** Share of (output channel, group) pairs whose max |w| was shrunk. */
  groups_shrunk?: number;
  /** Mean shrink of max |w| over the groups (0 … 0.45). */
  mean_shrink?: number;
  reason?: string;
}

export interface AwqReportRow {
  activation: string;
  weights: string[];
  alpha: number;
  /** Grouped Conv weights: the α each conv group chose (alpha is their mean). */
  conv_group_alphas?: number[];
  /** After the scale and clip searches, against rtn, on the calibration XᵀX. */
  proxy_loss_reduction: number | null;
  /** The scale search alone. */
  scale_proxy_loss_reduction: number | null;
  clip: AwqClipRow[];
  scales: string;
}

export interface DataAwareReport {
  method: DataAwareMethod;
  source: 'user' | 'random';
  warning?: string;
  calibration_samples: number;
  held_back_samples: number;
  measured_on_calibration: boolean;
  statistics: { kind: 'diag' | 'full'; activations: number; passes: number; peak_hessian_bytes: number; hessian_max_bytes: number };
  gptq?: { damp: number; block_size: number; act_order: boolean };
  awq?: AwqReportRow[];
  /** The quantized model against the float one on the held-back samples (none when the comparison did not run). */
  outputs: HeldBackOutput[];
  /** Whether that comparison ran: 'error' when onnxruntime crashed or failed in it (the model is returned all the same, as validation does). */
  comparison: Comparison;
  calibration_ms: number;
  quantize_ms: number;
  measure_ms: number;
}

export interface DataAwareOutcome {
  result: ModelQuantResult;
  report: DataAwareReport;
}

interface Target {
  c: WeightCandidate;
  plan: WeightPlan;
  inputs: WeightInputs;
}

/** The weights the method can see, and why the others are rounded to nearest. */
function targets(model: OnnxModel, opts: ModelQuantOptions, method: DataAwareMethod): { list: Target[]; why: Map<string, string> } {
  const found = findWeights(model, opts);
  const opset = defaultOpset(model);
  const list: Target[] = [];
  const why = new Map<string, string>();
  for (const c of found.candidates) {
    const plan = planWeight(c, opts, opset);
    if ('skip' in plan) continue;
    if (plan.format !== 'qdq' && plan.format !== 'matmulnbits' && plan.format !== 'dynamic') continue;
    if (method !== 'imatrix' && plan.granularity === 'per_tensor') {
      why.set(c.name, `${method} fits per group or per channel, and this weight is quantized per tensor`);
      continue;
    }
    if (c.uses.some((u) => u.opType === 'Gather')) {
      why.set(c.name, 'an embedding (Gather) has no input activation to weigh it by');
      continue;
    }
    const inputs = weightInputs(c, method !== 'imatrix');
    if (typeof inputs === 'string') {
      why.set(c.name, inputs);
      continue;
    }
    if (method === 'gptq' && inputs.inputs.some((i) => i.layout === 'patches')) {
      const problem = gptqConvProblem(c.tensor.dims, plan);
      if (problem) {
        why.set(c.name, problem);
        continue;
      }
    }
    if (method === 'awq') {
      const problem = awqProblem(c, inputs, plan);
      if (problem) {
        why.set(c.name, problem);
        continue;
      }
    }
    list.push({ c, plan, inputs });
  }
  return { list, why };
}

function awqProblem(c: WeightCandidate, inputs: WeightInputs, plan: WeightPlan): string | undefined {
  if (c.tensor.dataType !== DataType.float32 || c.uses.some((u) => u.valueType !== DataType.float32)) return 'awq rescales float32 weights and activations; this one is not float32';
  if (c.constantNode !== undefined) return 'awq rescales initializers; this weight is a Constant node';
  if (c.otherUses > 0) return 'the float weight is also read elsewhere';
  if (new Set(inputs.inputs.map((i) => i.activation)).size > 1) return 'its consumers read different activations (one scale per activation)';
  const patches = inputs.inputs.filter((i) => i.layout === 'patches');
  if (patches.length) {
    if (patches.length !== inputs.inputs.length) return 'read by a Conv and by a MatMul/Gemm: one s cannot serve both layouts';
    const conv = patches[0]!.conv!;
    if (conv.group > 1 && conv.channelsPerGroup === 1) return depthwiseReason(conv.group);
    return gptqConvProblem(c.tensor.dims, plan);
  }
  return undefined;
}

/**
 * Depthwise Conv (one input channel per conv group): s_c multiplies only the weights of the
 * output channel that reads channel c, and the planner quantizes such a weight per channel
 * (plan.ts: blocks along C/group = 1 would be one weight each), so its grid scales with s_c and
 * Q(W·s)/s = Q(W) (min and max, hence scale, times s_c; the zero point unchanged): no s can
 * change the rounding. No search is faked: the weight is rtn.
 */
function depthwiseReason(group: number): string {
  return `depthwise Conv (group=${group}, one input channel per group): its per-channel grid covers one output channel, which reads a single input channel, so an input-channel scale cancels in Q(W·s)/s and cannot change the rounding; quantized as rtn would (gptq fits it with each channel's patch Hessian)`;
}

/** Targets that share activations, transitively: their statistics must be gathered in one batch. */
function units(list: readonly Target[]): Target[][] {
  const parent = list.map((_, i) => i);
  const find = (i: number): number => (parent[i] === i ? i : (parent[i] = find(parent[i]!)));
  const owner = new Map<string, number>();
  list.forEach((t, i) => {
    for (const inp of t.inputs.inputs) {
      const j = owner.get(inp.activation);
      if (j === undefined) owner.set(inp.activation, i);
      else parent[find(i)] = find(j);
    }
  });
  const groups = new Map<number, Target[]>();
  list.forEach((t, i) => groups.set(find(i), [...(groups.get(find(i)) ?? []), t]));
  return [...groups.values()];
}

function requestsOf(unit: readonly Target[]): StatsRequest[] {
  const seen = new Map<string, StatsRequest>();
  for (const t of unit) for (const i of t.inputs.inputs) seen.set(statsKey(i), { activation: i.activation, k: i.k, layout: i.layout, conv: i.conv });
  return [...seen.values()];
}

function statsOf(t: Target, stats: ReadonlyMap<string, InputStats>): InputStats {
  return sumStats(t.inputs.inputs.map((i) => stats.get(statsKey(i))!));
}

/** Mean x² per input feature, floored so a feature never seen non-zero still counts a little. */
function importance(s: InputStats): Float64Array {
  const out = Float64Array.from(s.sumSq, (v) => v / Math.max(1, s.rows));
  const mean = out.reduce((a, b) => a + b, 0) / Math.max(1, out.length);
  const floor = mean > 0 ? mean * 1e-6 : 1;
  return out.map((v) => Math.max(v, floor));
}

function rtnReconstruction(values: Float32Array, t: Target, opts: ModelQuantOptions): Float32Array {
  const w = quantizeWeight(values, t.c.tensor.dims, t.plan, { ...opts, method: 'rtn' });
  return dequantizeWith(w.q, w.params);
}

function fitOne(t: Target, s: InputStats, opts: ModelQuantOptions, method: 'imatrix' | 'gptq', external: ExternalData | undefined): WeightOverride {
  const values = readFloat(t.c.tensor, external);
  const dims = t.c.tensor.dims;
  const kAxis = t.inputs.kAxis;
  const conv = method === 'gptq' ? t.inputs.inputs[0]!.conv : undefined;
  const geo = conv ? { group: conv.group, patchK: conv.patchK } : undefined;
  const weight =
    method === 'imatrix'
      ? quantizeImatrix(values, dims, t.plan, opts, kAxis, importance(s))
      : geo
        ? quantizeGptqConv(values, dims, t.plan, opts, geo, s.xtx!)
        : quantizeGptq(values, dims, t.plan, opts, kAxis, s.xtx!);
  const wHat = dequantizeWith(weight.q, weight.params);
  const proxy = method === 'imatrix' ? { k: s.k, sumSq: s.sumSq } : s;
  const loss = (r: Float32Array) => (geo ? convProxyLoss(values, r, dims, geo, s.xtx!) : proxyLoss(values, r, dims, kAxis, proxy));
  const reduction = lossReduction(loss(wHat), loss(rtnReconstruction(values, t, opts)));
  const label = method === 'gptq' ? `gptq (damp ${opts.gptq.damp}, block ${opts.gptq.blockSize}${opts.gptq.actOrder ? ', act-order' : ''}${geo ? `, Conv patches K ${geo.patchK}${geo.group > 1 ? ` × ${geo.group} groups` : ''}` : ''})` : 'imatrix';
  return { weight, method: label, proxyLossReduction: reduction, error: errorBetween(values, wHat, weight.params), note: method === 'gptq' ? fewRowsNote(s.rows, geo ? geo.patchK : s.k) : undefined };
}

/**
 * GPTQ with fewer activation rows than input features: XᵀX has rank ≤ rows < K, and the
 * error it spreads goes along directions the calibration never saw (on mobilenet_v3's
 * squeeze-excite 1×1 convs, 9 pooled rows for K = 24-144, weight SNR fell to 2 dB while the
 * proxy loss fell 94%). Said in the row so the weight SNR is read with it.
 */
function fewRowsNote(rows: number, k: number): string | undefined {
  if (rows >= k) return undefined;
  return `gptq saw ${rows} activation row(s) for ${k} input features: XᵀX has rank ≤ ${rows}, so the fit may move the weights far along directions the calibration never saw (read snr_db with that); more calibration samples (or longer ones) fix it`;
}

export async function quantizeDataAware(model: OnnxModel, samples: CalibrationSamples, req: DataAwareRequest, hooks: DataAwareHooks = {}): Promise<DataAwareOutcome> {
  const { method, weights: opts } = req;
  const heldBack = req.heldBack ?? defaultHeldBack(samples.count);
  const split = heldBack > 0 ? splitSamples(samples, heldBack) : { calibrate: samples, heldBack: samples };
  const maxBytes = req.maxHessianBytes ?? DEFAULT_HESSIAN_MAX_BYTES;
  const full = method !== 'imatrix';
  const t0 = performance.now();
  const { list, why } = targets(model, opts, method);
  const byUnit = units(list);
  const batches = batchesFor(byUnit.map(requestsOf), full, maxBytes);
  const fitted = new Map<string, WeightOverride>();
  const awqGroups: AwqGroup[] = [];
  const pending = new Set(list);
  // The clip search models rtn's min-max grid; percentile and mse calibration choose their own clipping.
  const clipWanted = method === 'awq' && opts.awqClip && opts.calibration === 'minmax';
  const runs = hooks.runs ?? inProcess;
  const passes: StatsPasses = await runs.statsBatches(model, batches, split.calibrate, { full, maxBytes, cancel: hooks.cancel, externalData: hooks.externalData, onSample: hooks.onCalibrating }, (stats) => {
    const ready = [...pending].filter((t) => t.inputs.inputs.every((i) => stats.has(statsKey(i))));
    for (const t of ready) pending.delete(t);
    if (method === 'awq') {
      // One s per activation and layout (a Conv's [N, C, …] input and a MatMul's [..., K] rows are scaled along different axes).
      const byActivation = new Map<string, Target[]>();
      for (const t of ready) {
        const i = t.inputs.inputs[0]!;
        const a = `${i.layout === 'patches' ? 'conv' : 'rows'}\u0000${i.activation}`;
        byActivation.set(a, [...(byActivation.get(a) ?? []), t]);
      }
      for (const ts of byActivation.values()) {
        checkpoint(hooks.cancel);
        const first = ts[0]!.inputs.inputs[0]!;
        const activation = first.activation;
        const s = stats.get(statsKey(first))!;
        const members: AwqMember[] = ts.map((t) => {
          const inp = t.inputs.inputs[0]!;
          const conv = inp.conv;
          const own = statsKey(inp) === statsKey(first) ? undefined : stats.get(statsKey(inp));
          return { c: t.c, plan: t.plan, kAxis: t.inputs.kAxis, values: readFloat(t.c.tensor, hooks.external), conv: conv ? { group: conv.group, patchK: conv.patchK } : undefined, stats: own };
        });
        const meanAbs = Float64Array.from(s.sumAbs, (v) => v / Math.max(1, s.rows));
        const choice = searchAwq(members, meanAbs, s, opts);
        const clippedLoss = clipWanted ? clipAwqMembers(members, choice, s, opts, (m) => clipSkip(model, m)) : undefined;
        awqGroups.push({ activation, members, choice, clippedLoss });
      }
      return;
    }
    // A weight's fit (a patch Hessian's Cholesky, the GPTQ column loop) can take seconds; a task
    // past its deadline or whose client went away stops before the next one.
    for (const t of ready) {
      checkpoint(hooks.cancel);
      fitted.set(t.c.name, fitOne(t, statsOf(t, stats), opts, method, hooks.external));
    }
  });
  const t1 = performance.now();

  let quantizeFrom = model;
  const awqOf = new Map<string, { group: AwqGroup; member: AwqMember }>();
  const awqRows: AwqReportRow[] = [];
  if (method === 'awq') {
    const folded = foldAwq(model, awqGroups, hooks.external);
    quantizeFrom = folded.model;
    for (const group of awqGroups) {
      for (const member of group.members) awqOf.set(member.c.name, { group, member });
      awqRows.push({
        activation: group.activation,
        weights: group.members.map((m) => m.c.name),
        alpha: group.choice.alpha,
        ...(group.choice.groupAlphas ? { conv_group_alphas: group.choice.groupAlphas } : {}),
        proxy_loss_reduction: lossReduction(group.clippedLoss ?? group.choice.loss, group.choice.rtnLoss),
        scale_proxy_loss_reduction: lossReduction(group.choice.loss, group.choice.rtnLoss),
        clip: group.members.map((m) => clipRow(m, opts, clipWanted)),
        scales: isIdentity(group.choice) ? `none (α = 0${group.choice.groupAlphas ? ' in every conv group' : ''}: rtn was best)` : (folded.where.get(group.activation) ?? ''),
      });
    }
  }
  const result = quantizeModel(quantizeFrom, opts, {
    external: hooks.external,
    onProgress: hooks.onProgress,
    quantizeWeight: (c, _plan, values) => {
      const done = fitted.get(c.name);
      if (done) {
        fitted.delete(c.name);
        return done;
      }
      const awq = awqOf.get(c.name);
      if (awq) {
        // The stored weight is W·s; its error is reported against W itself.
        const { member, group } = awq;
        const stored = clipped(member, values);
        const weight = quantizeWeight(stored, c.tensor.dims, member.plan, { ...opts, method: 'rtn' });
        const wHat = awqReconstruction(member, group.choice.s, opts);
        return {
          weight,
          method: `awq (α ${alphaText(group)}${member.clip ? ', clip searched' : ''})`,
          proxyLossReduction: lossReduction(group.clippedLoss ?? group.choice.loss, group.choice.rtnLoss),
          error: errorBetween(member.values, wHat, weight.params),
          note: awqNote(group, member),
        };
      }
      return why.get(c.name) ?? 'no activation statistics for this weight';
    },
  });
  const t2 = performance.now();
  const { outputs, comparison } = await compareHeldBack(runs, model, result.model, split.heldBack, hooks);
  const t3 = performance.now();
  const report: DataAwareReport = {
    method,
    source: samples.source,
    ...(samples.source === 'random' ? { warning: 'calibration_data=random: the statistics come from N(0, 1) inputs, not from data like the model will see; the methods may then do worse than rtn' } : {}),
    calibration_samples: split.calibrate.count,
    held_back_samples: split.heldBack.count,
    measured_on_calibration: heldBack === 0,
    statistics: { kind: full ? 'full' : 'diag', activations: passes.activations, passes: passes.passes, peak_hessian_bytes: passes.peakBytes, hessian_max_bytes: maxBytes },
    ...(method === 'gptq' ? { gptq: { damp: opts.gptq.damp, block_size: opts.gptq.blockSize, act_order: opts.gptq.actOrder } } : {}),
    ...(method === 'awq' ? { awq: awqRows } : {}),
    outputs,
    comparison,
    calibration_ms: t1 - t0,
    quantize_ms: t2 - t1,
    measure_ms: t3 - t2,
  };
  return { result, report };
}

/** The held-back comparison; a crash in it loses only the comparison (statistics crashes fail the request before this). */
async function compareHeldBack(runs: FloatRuns, float: OnnxModel, quantized: OnnxModel, samples: CalibrationSamples, hooks: DataAwareHooks): Promise<Pick<DataAwareReport, 'outputs' | 'comparison'>> {
  try {
    return { outputs: await runs.heldBack(float, quantized, samples, { cancel: hooks.cancel, externalData: hooks.externalData }), comparison: { status: 'ok' } };
  } catch (err) {
    if (err instanceof MeasurementLost) return { outputs: [], comparison: { status: 'error', reason: err.reason } };
    throw err;
  }
}

function awqNote(group: AwqGroup, member: AwqMember): string | undefined {
  const shared = group.members.length > 1 ? `, s shared with ${group.members.filter((m) => m !== member).map((m) => `'${m.c.name}'`).join(', ')}` : '';
  const perGroup = group.choice.groupAlphas ? ', α and normalization per conv group' : '';
  const scaled = isIdentity(group.choice) ? undefined : `stored as W·s along K (s = mean|x|^${alphaText(group)} of '${group.activation}'${perGroup}${shared})`;
  const clip = member.clip ? `groups clipped to the searched max |w| (${clipText(member.clip)})` : member.noClip ? `not clipped: ${member.noClip}` : undefined;
  const parts = [scaled, clip].filter((x) => x !== undefined);
  return parts.length ? parts.join('; ') : undefined;
}

/** α, or for a per-conv-group search each group's (as many as fit a short note). */
function alphaText(group: AwqGroup): string {
  const a = group.choice.groupAlphas;
  if (!a) return group.choice.alpha.toFixed(2);
  const shown = a.slice(0, 8).map((x) => x.toFixed(2)).join('/');
  return `${shown}${a.length > 8 ? `/… (${a.length} groups, mean ${group.choice.alpha.toFixed(2)})` : ''}`;
}

function clipText(clip: ClipChoice): string {
  const { meanShrink, shrunk } = clipSummary(clip);
  return `${(100 * shrunk).toFixed(0)}% of groups shrunk, mean shrink ${(100 * meanShrink).toFixed(1)}%`;
}

/** Why a weight's clip search is skipped: llm-awq does not clip the query/key projections. */
function clipSkip(model: OnnxModel, m: AwqMember): string | undefined {
  const scores = attentionScoresReached(model, m.c.uses.map((u) => u.node));
  return scores ? `its output reaches the attention scores (MatMul '${scores.name}' before a Softmax): a query/key projection, which llm-awq does not clip` : undefined;
}

function clipRow(m: AwqMember, opts: ModelQuantOptions, wanted: boolean): AwqClipRow {
  if (m.clip) {
    const { meanShrink, shrunk } = clipSummary(m.clip);
    return { weight: m.c.name, clipped: true, groups_shrunk: shrunk, mean_shrink: meanShrink };
  }
  const reason = m.noClip ?? (!opts.awqClip ? 'awq_clip=false' : !wanted ? `calibration=${opts.calibration} chooses its own clipping (the clip search models the min-max grid)` : 'not searched');
  return { weight: m.c.name, clipped: false, reason };
}

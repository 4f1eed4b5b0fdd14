import type { OnnxModel } from '../proto/model.js';
import type { ExternalData } from '../proto/tensor-data.js';
import type { ModelQuantOptions } from '../weights/options.js';
import { emitStatic } from './emit-static.js';
import { GraphIndex } from './graph-index.js';
import { planStatic, type StaticPlan } from './plan-static.js';
import { computeScaleZp, type ActivationParams, type ActivationType } from './qparams.js';
import { quantizeStaticWeights, type StaticBias, type StaticWeight } from './static-weights.js';

// One static quantization of a model from calibrated ranges: place, compute parameters,
// quantize weights and biases, emit. The fallback loop calls it again with more nodes kept
// float; the ranges are measured once.

export interface ActivationRangeLike {
  min: number;
  max: number;
}

export interface StaticOptions {
  activationType: ActivationType;
  /** Weight options for the tensor API's quantizer (calibration, percentile). */
  weights: ModelQuantOptions;
  exclude?: ReadonlySet<number> | undefined;
}

export interface StaticModel {
  model: OnnxModel;
  plan: StaticPlan;
  params: Map<string, ActivationParams>;
  weights: Map<string, StaticWeight>;
  biases: StaticBias[];
  pairs: number;
  domainsUsed: string[];
  dequantizedAs: Map<string, string>;
  /** Tensors a rule asked for that have no range (never reached by calibration). */
  unranged: string[];
}

export function staticQuantize(
  g: GraphIndex,
  ranges: ReadonlyMap<string, ActivationRangeLike>,
  opts: StaticOptions,
  external?: ExternalData,
): StaticModel {
  const plan = planStatic(g, { exclude: opts.exclude });
  const params = new Map<string, ActivationParams>();
  const unranged: string[] = [];
  for (const m of plan.tensors.values()) {
    if (m.kind !== 'own') continue;
    const r = m.fixedRange ?? ranges.get(m.name);
    if (!r || !Number.isFinite(r.min) || !Number.isFinite(r.max)) {
      unranged.push(m.name);
      continue;
    }
    params.set(m.name, computeScaleZp(r.min, r.max, opts.activationType));
  }
  for (const [name, m] of plan.tensors) if (!params.has(m.root)) plan.tensors.delete(name);
  const paramsOf = (t: string) => {
    const m = plan.tensors.get(t);
    return m ? params.get(m.root) : undefined;
  };
  const { weights, biases } = quantizeStaticWeights(g, plan, paramsOf, opts.weights, external);
  const emitted = emitStatic(g, plan, params, weights, biases, opts.activationType, external);
  return { model: emitted.model, plan, params, weights, biases, pairs: emitted.pairs, domainsUsed: emitted.domainsUsed, dequantizedAs: emitted.dequantizedAs, unranged };
}

export { GraphIndex };

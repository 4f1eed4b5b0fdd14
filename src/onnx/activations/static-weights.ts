import { reportFromSums } from '../../core/metrics.js';
import { quantizeWith } from '../../core/quantize.js';
import { rint } from '../../core/round.js';
import type { ExternalData } from '../proto/tensor-data.js';
import { readFloat32 } from '../proto/tensor-data.js';
import type { ModelQuantOptions } from '../weights/options.js';
import type { WeightPlan } from '../weights/plan.js';
import { quantizeWeight, type QuantizedWeight } from '../weights/quantize-weight.js';
import type { GraphIndex } from './graph-index.js';
import type { BiasMark, StaticPlan, WeightMark } from './plan-static.js';
import type { ActivationParams } from './qparams.js';

// Weights through the tensor API's quantizer (int8 symmetric, per channel where the rule
// gives an axis), then the int32 biases: scale s_x·s_w·beta, zero point 0. Where a bias
// would overflow int32 at that scale the weight's scale is raised first (onnxruntime's
// _adjust_weight_scale_for_int32_bias, PR #22020) and the weight requantized with it.

export interface StaticWeight {
  mark: WeightMark;
  plan: WeightPlan;
  w: QuantizedWeight;
  /** Channels whose scale was raised so a bias fits int32. */
  raised: number;
}

export interface StaticBias {
  mark: BiasMark;
  q: Int32Array;
  scale: Float32Array;
  perChannel: boolean;
}

const INT32_MAX = 2147483647;
const QRANGE = INT32_MAX - -INT32_MAX;

export function quantizeStaticWeights(
  g: GraphIndex,
  plan: StaticPlan,
  params: (tensor: string) => ActivationParams | undefined,
  opts: ModelQuantOptions,
  external?: ExternalData,
): { weights: Map<string, StaticWeight>; biases: StaticBias[] } {
  const weights = new Map<string, StaticWeight>();
  const values = new Map<string, Float32Array>();
  for (const mark of plan.weights.values()) {
    const t = g.constants.get(mark.name)!.tensor;
    const x = readFloat32(t, external);
    const wplan: WeightPlan = {
      format: 'qdq',
      bits: 8,
      granularity: mark.axis === undefined ? 'per_tensor' : 'per_channel',
      groupSize: 128,
      axis: mark.axis ?? 0,
    };
    weights.set(mark.name, { mark, plan: wplan, w: quantizeWeight(x, t.dims, wplan, { ...opts, scheme: 'symmetric' }), raised: 0 });
    values.set(mark.name, x);
  }
  const biases: { mark: BiasMark; b: Float32Array; sx: number }[] = [];
  for (const mark of plan.biases) {
    const sw = weights.get(mark.weight);
    const px = params(mark.input);
    if (!sw || !px) continue;
    const b = readFloat32(g.constants.get(mark.name)!.tensor, external);
    biases.push({ mark, b, sx: px.scale });
    raiseForBias(sw, b, px.scale * mark.beta);
  }
  for (const [name, sw] of weights) {
    if (sw.raised === 0) continue;
    const { q, sums } = quantizeWith(values.get(name)!, sw.w.params);
    sw.w = { params: sw.w.params, q, error: reportFromSums(sums) };
  }
  return {
    weights,
    biases: biases.map(({ mark, b, sx }) => {
      const s = weights.get(mark.weight)!.w.params.scale;
      const perChannel = s.length > 1;
      const scale = new Float32Array(perChannel ? b.length : 1);
      for (let c = 0; c < scale.length; c++) scale[c] = Math.fround(Math.fround(sx * s[perChannel ? c : 0]!) * mark.beta);
      const q = new Int32Array(b.length);
      for (let i = 0; i < b.length; i++) {
        const v = rint(b[i]! / scale[perChannel ? i : 0]!);
        q[i] = Math.max(-INT32_MAX - 1, Math.min(INT32_MAX, Number.isFinite(v) ? v : 0));
      }
      return { mark, q, scale, perChannel };
    }),
  };
}

/** Raises the weight's scales where s_x·s_w would put the bias past int32. */
function raiseForBias(sw: StaticWeight, b: Float32Array, sx: number): void {
  const s = sw.w.params.scale;
  const perChannel = s.length > 1;
  if (perChannel && s.length !== b.length) return;
  let absmax = 0;
  for (const v of b) absmax = Math.max(absmax, Math.abs(v));
  for (let c = 0; c < s.length; c++) {
    const amax = perChannel ? Math.abs(b[c]!) : absmax;
    const smallest = (1.0001 * 2 * amax) / QRANGE;
    const candidate = sx * s[c]!;
    if (candidate > 0 && candidate < smallest) {
      s[c] = Math.fround(s[c]! * (smallest / candidate));
      sw.raised++;
    }
  }
}

import type { OnnxModel } from '../proto/model.js';
import type { ExternalData } from '../proto/tensor-data.js';
import { MeasurementLost, type Comparison, type FloatRuns } from './float-runs.js';
import { measureActivationErrors, type ActivationErrors, type MeasureOptions, type OutputError, type SampleFeeds } from '../runtime/activation-error.js';
import type { GraphIndex } from './graph-index.js';
import { staticQuantize, type ActivationRangeLike, type StaticModel, type StaticOptions } from './static-model.js';

// Automatic fallback to a target: quantize, measure on held-back samples, and while the
// outputs miss the target return to float the nodes where the error appears (the largest
// fall in SNR from a node's quantized inputs to its output), more of them each round. What
// onnxruntime's users do by hand with nodes_to_exclude (onnxruntime #14233, #13863).

export interface FallbackTarget {
  /** Every output's SNR (dB) on the held-back samples at least this. */
  snrDb?: number | undefined;
  /** Every output's mean cosine similarity at least 1 − this. */
  maxCosineDrop?: number | undefined;
}

export interface ExcludedNode {
  node: string;
  op_type: string;
  /** The tensor whose error pointed at the node, its SNR and its inputs' (dB). */
  tensor: string;
  snr_db: number | null;
  input_snr_db: number | null;
  round: number;
  reason: string;
}

export interface FallbackResult {
  quantized: StaticModel;
  /** Empty when the last round's measurement was lost (`comparison`). */
  errors: ActivationErrors;
  excluded: ExcludedNode[];
  rounds: number;
  /** null when no target was given, or when the measurement that would tell was lost. */
  target_met: boolean | null;
  /** 'error' when onnxruntime crashed or failed measuring a round: that round's model is the result, unmeasured. */
  comparison: Comparison;
  /** Each round's worst output figure, for the report. */
  history: { round: number; excluded: number; min_output_snr_db: number | null; min_output_cosine: number | null }[];
}

export const MAX_FALLBACK_ROUNDS = 8;
/**
 * What a node whose inputs are all float is measured against: its output's own Q/DQ is the
 * only error it adds, and below this SNR that error is blamed on it.
 */
const FLOAT_INPUT_SNR = 40;

/** Why the outputs miss the target (naming the worst output), or undefined when they meet it. */
export function missesTarget(outputs: readonly OutputError[], t: FallbackTarget): string | undefined {
  const bySnr = [...outputs].sort((a, b) => (a.snr_db ?? Infinity) - (b.snr_db ?? Infinity));
  const o = bySnr[0];
  if (o && t.snrDb !== undefined && (o.snr_db ?? Infinity) < t.snrDb) return `output '${o.name}' SNR ${o.snr_db?.toFixed(1)} dB < target_snr_db ${t.snrDb}`;
  const c = [...outputs].sort((a, b) => a.cosine_similarity - b.cosine_similarity)[0];
  if (c && t.maxCosineDrop !== undefined && 1 - c.cosine_similarity > t.maxCosineDrop) {
    return `output '${c.name}' cosine ${c.cosine_similarity.toFixed(5)} dropped more than max_cosine_drop ${t.maxCosineDrop}`;
  }
  return undefined;
}

const minOf = (xs: (number | null)[]) => {
  const v = xs.filter((x): x is number => x !== null);
  return v.length ? Math.min(...v) : null;
};

/** Nodes ranked by how much SNR they lose, worst first. */
function blame(g: GraphIndex, q: StaticModel, errors: ActivationErrors, excluded: ReadonlySet<number>) {
  const snr = (t: string) => errors.tensors.get(t)?.snr_db ?? null;
  const producerOf = new Map<string, number>();
  for (const [r, p] of q.plan.folded) producerOf.set(g.nodes[r]!.outputs[0]!, p);
  const rows: { node: number; tensor: string; snr: number | null; input: number | null; drop: number }[] = [];
  for (const name of q.plan.tensors.keys()) {
    const p = producerOf.get(name) ?? g.producer.get(name);
    const s = snr(name);
    if (p === undefined || excluded.has(p) || s === null) continue;
    const ins = g.nodes[p]!.inputs.filter((i) => q.plan.tensors.has(i)).map(snr);
    const input = minOf(ins);
    rows.push({ node: p, tensor: name, snr: s, input, drop: (input ?? FLOAT_INPUT_SNR) - s });
  }
  rows.sort((a, b) => b.drop - a.drop || (a.snr ?? 0) - (b.snr ?? 0));
  const seen = new Set<number>();
  return rows.filter((r) => !seen.has(r.node) && seen.add(r.node));
}

export async function quantizeWithFallback(
  g: GraphIndex,
  float: OnnxModel,
  ranges: ReadonlyMap<string, ActivationRangeLike>,
  opts: StaticOptions,
  heldBack: SampleFeeds,
  target: FallbackTarget | undefined,
  measure: MeasureOptions & { external?: ExternalData | undefined; onRound?: ((round: number) => void) | undefined; runs?: FloatRuns | undefined },
): Promise<FallbackResult> {
  const exclude = new Set(opts.exclude ?? []);
  const excluded: ExcludedNode[] = [];
  const history: FallbackResult['history'] = [];
  for (let round = 0; ; round++) {
    measure.onRound?.(round);
    const quantized = staticQuantize(g, ranges, { ...opts, exclude }, measure.external);
    let errors: ActivationErrors;
    try {
      errors = await (measure.runs?.activationErrors ?? measureActivationErrors)(float, quantized.model, [...quantized.plan.tensors.keys()], heldBack, measure, quantized.dequantizedAs);
    } catch (err) {
      // The model is made; only its figures are lost (the request is not the client's fault).
      if (!(err instanceof MeasurementLost)) throw err;
      history.push({ round, excluded: excluded.length, min_output_snr_db: null, min_output_cosine: null });
      const unmeasured = { samples: 0, tensors: new Map(), outputs: [] };
      return { quantized, errors: unmeasured, excluded, rounds: round + 1, target_met: null, history, comparison: { status: 'error', reason: err.reason } };
    }
    history.push({
      round,
      excluded: excluded.length,
      min_output_snr_db: minOf(errors.outputs.map((o) => o.snr_db)),
      min_output_cosine: minOf(errors.outputs.map((o) => o.cosine_similarity)),
    });
    const miss = target ? missesTarget(errors.outputs, target) : undefined;
    const done = (met: boolean | null): FallbackResult => ({ quantized, errors, excluded, rounds: round + 1, target_met: met, history, comparison: { status: 'ok' } });
    if (!target) return done(null);
    if (!miss) return done(true);
    if (round + 1 >= MAX_FALLBACK_ROUNDS) return done(false);
    const worst = blame(g, quantized, errors, exclude).slice(0, 2 ** Math.max(0, round - 1));
    if (!worst.length) return done(false);
    for (const w of worst) {
      exclude.add(w.node);
      const n = g.nodes[w.node]!;
      const fmt = (x: number | null) => (x === null ? 'float' : `${x.toFixed(1)} dB`);
      excluded.push({
        node: n.name || `${n.opType}_${w.node}`,
        op_type: n.opType,
        tensor: w.tensor,
        snr_db: w.snr,
        input_snr_db: w.input,
        round,
        reason: `${miss}; '${w.tensor}' fell to ${fmt(w.snr)} from ${fmt(w.input)} at its inputs, the largest fall left`,
      });
    }
  }
}

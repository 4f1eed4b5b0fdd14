import { Errors } from '../../errors.js';
import type { CancelFlag } from '../../pool/cancel.js';
import type { OnnxModel } from '../proto/model.js';
import { runWithGrams, runWithIntermediates, type ExternalDataFiles } from '../runtime/collect.js';
import type { CalibrationSamples } from './calibration-data.js';
import { statsKey, type ConvPatches } from '../weights/weight-inputs.js';

// Statistics of the activations that weights multiply, accumulated sample by sample while
// the float model runs in onnxruntime (runWithIntermediates: one sample's activations alive
// at a time). Per activation of K features, over all its rows (leading dims flattened:
// [batch, seq, K] is batch·seq rows of K):
//   sumSq[k]  = Σ x_k²        (diag XᵀX: imatrix's importance)
//   sumAbs[k] = Σ |x_k|       (AWQ's mean |x| per channel)
//   xtx       = Σ xᵀx, K×K    (GPTQ's Hessian, AWQ's output-error metric), when asked for
// The K×K products are computed inside onnxruntime (MatMul(Transpose(X), X) per sample, as the
// static path reduces min/max in the graph) and summed in float64 here. The sums are float64 (8·K² bytes each): the activations are taken in batches
// whose K×K sums fit `maxBytes` together, the samples running once per batch, and one
// activation alone past the limit is a 413 that names it.

export interface InputStats {
  k: number;
  /** Rows (input vectors) accumulated. */
  rows: number;
  sumSq: Float64Array;
  sumAbs: Float64Array;
  /** Σ xᵀx, K×K row-major and symmetric (full statistics only). */
  xtx?: Float64Array | undefined;
}

export interface StatsRequest {
  activation: string;
  k: number;
  /**
   * rows: [..., K]; channels: [N, K, ...spatial] (per-channel sums over N and the spatial dims; no xtx);
   * patches: channels' sums, and as xtx the Σ pᵀp of the Conv's unfolded input patches, per conv group
   * (group × patchK × patchK, GPTQ's add_batch with nn.Unfold).
   */
  layout: 'rows' | 'channels' | 'patches';
  conv?: ConvPatches | undefined;
}

/** The K×K sums' bytes: float64 here, and for patches the float32 one-hot unfold kernel onnxruntime holds. */
export function requestBytes(r: StatsRequest): number {
  if (r.layout === 'rows') return gramBytes(r.k);
  if (r.layout === 'patches' && r.conv) return r.conv.group * (gramBytes(r.conv.patchK) + 4 * r.conv.patchK * r.conv.patchK);
  return 0;
}

export interface StatsOptions {
  full: boolean;
  /** Most bytes of K×K sums alive at once (HESSIAN_MAX_BYTES). */
  maxBytes: number;
  cancel?: CancelFlag | undefined;
  externalData?: ExternalDataFiles | undefined;
  /** In the onnxruntime host: the directory of the staged model's external data (runtime/session-model.ts). */
  besideDir?: string | undefined;
  /** Samples run so far over every batch, and how many will run in all. */
  onSample?: ((done: number, total: number) => void) | undefined;
}

export interface StatsPasses {
  /** Passes over the samples (one per batch of activations). */
  passes: number;
  /** The largest batch's K×K bytes. */
  peakBytes: number;
  /** Activations whose statistics were gathered. */
  activations: number;
}

export function gramBytes(k: number): number {
  return 8 * k * k;
}

/**
 * Units (the activations one weight needs, which must be in the same batch) packed into
 * batches whose K×K sums fit maxBytes together; one batch when only diagonals are wanted.
 */
export function batchesFor(units: readonly StatsRequest[][], full: boolean, maxBytes: number): StatsRequest[][] {
  const nonEmpty = units.filter((u) => u.length > 0);
  if (!full) return nonEmpty.length ? [nonEmpty.flat()] : [];
  const batches: StatsRequest[][] = [];
  let current: StatsRequest[] = [];
  let bytes = 0;
  for (const unit of nonEmpty) {
    const b = unit.reduce((sum, r) => sum + requestBytes(r), 0);
    if (b > maxBytes) {
      const r = unit.reduce((a, x) => (requestBytes(x) > requestBytes(a) ? x : a));
      const k = r.layout === 'patches' && r.conv ? r.conv.patchK : r.k;
      const what = r.layout === 'patches' && r.conv ? `${r.conv.group > 1 ? `${r.conv.group} × ` : ''}${k}×${k} XᵀX of its Conv patches` : `${k}×${k} XᵀX`;
      throw new Errors.CalibrationTooLarge(
        `the weights reading '${r.activation}' need its ${what} (${b} bytes for this weight's inputs); the limit is HESSIAN_MAX_BYTES=${maxBytes}: raise it, or use method=imatrix (K values per input)`,
      );
    }
    if (bytes + b > maxBytes && current.length) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(...unit);
    bytes += b;
  }
  if (current.length) batches.push(current);
  return batches;
}

function accumulate(s: InputStats, data: Float32Array, dims: readonly number[], layout: StatsRequest['layout'], name: string): void {
  const k = s.k;
  if (layout === 'rows') {
    if (dims.length === 0 || dims[dims.length - 1] !== k) {
      throw new Errors.Calibration(`calibration: activation '${name}' has dims [${dims.join(', ')}], expected [..., ${k}] for the weight it feeds`);
    }
    const rows = data.length / k;
    for (let r = 0; r < rows; r++) {
      const o = r * k;
      for (let i = 0; i < k; i++) {
        const v = data[o + i]!;
        s.sumSq[i]! += v * v;
        s.sumAbs[i]! += Math.abs(v);
      }
    }
    s.rows += rows;
    return;
  }
  if (dims.length < 2 || dims[1] !== k) {
    throw new Errors.Calibration(`calibration: activation '${name}' has dims [${dims.join(', ')}], expected [N, ${k}, ...] for the Conv weight it feeds`);
  }
  const n = dims[0]!;
  const spatial = data.length / (n * k);
  for (let b = 0; b < n; b++) {
    for (let c = 0; c < k; c++) {
      const o = (b * k + c) * spatial;
      let sq = 0;
      let ab = 0;
      for (let i = 0; i < spatial; i++) {
        const v = data[o + i]!;
        sq += v * v;
        ab += Math.abs(v);
      }
      s.sumSq[c]! += sq;
      s.sumAbs[c]! += ab;
    }
  }
  s.rows += n * spatial;
}

/**
 * Runs the samples once per batch and hands each batch's finished sums to onBatch before
 * the next batch starts, so only one batch's K×K sums are alive at a time (an activation
 * named by units in two batches is gathered in each).
 */
export async function forEachStatsBatch(
  model: OnnxModel,
  batches: readonly StatsRequest[][],
  samples: CalibrationSamples,
  opts: StatsOptions,
  onBatch: (stats: ReadonlyMap<string, InputStats>) => void | Promise<void>,
): Promise<StatsPasses> {
  const total = batches.length * samples.count;
  let done = 0;
  let peakBytes = 0;
  let activations = 0;
  for (const batch of batches) {
    const here = new Map<string, { r: StatsRequest; s: InputStats }>();
    let bytes = 0;
    for (const r of batch) {
      const key = statsKey(r);
      const seen = here.get(key);
      if (seen) {
        if (seen.r.k !== r.k || seen.r.layout !== r.layout) throw new Errors.Calibration(`calibration: activation '${r.activation}' feeds weights with different input sizes (${seen.r.k} and ${r.k})`);
        continue;
      }
      const full = opts.full && (r.layout === 'rows' || r.layout === 'patches');
      const xtxLength = r.layout === 'patches' && r.conv ? r.conv.group * r.conv.patchK ** 2 : r.k * r.k;
      here.set(key, { r, s: { k: r.k, rows: 0, sumSq: new Float64Array(r.k), sumAbs: new Float64Array(r.k), xtx: full ? new Float64Array(xtxLength) : undefined } });
      if (full) bytes += requestBytes(r);
    }
    peakBytes = Math.max(peakBytes, bytes);
    activations += here.size;
    const names = [...here.keys()];
    const each = () => {
      done++;
      opts.onSample?.(done, total);
    };
    const cancel = { cancel: opts.cancel, externalData: opts.externalData, besideDir: opts.besideDir };
    const grams = [...here.values()].filter(({ s }) => s.xtx);
    if (grams.length) {
      // The K×K sums come from onnxruntime's MatMul (in-graph, float32 per sample), added here in float64.
      await runWithGrams(
        model,
        grams.map(({ r }) => ({ key: statsKey(r), name: r.activation, k: r.k, conv: r.layout === 'patches' ? r.conv : undefined })),
        samples,
        (_i, values) => {
          for (const { r, s } of grams) {
            const v = values.get(statsKey(r))!;
            accumulate(s, v.value.data, v.value.dims, r.layout, r.activation);
            const g = v.gram;
            const acc = s.xtx!;
            for (let i = 0; i < acc.length; i++) acc[i]! += g[i]!;
          }
          each();
        },
        cancel,
      );
    }
    const rest = names.filter((n) => !here.get(n)!.s.xtx);
    if (rest.length) {
      await runWithIntermediates(
        model,
        [...new Set(rest.map((key) => here.get(key)!.r.activation))],
        samples,
        (_i, values) => {
          for (const key of rest) {
            const { r, s } = here.get(key)!;
            const v = values.get(r.activation)!;
            accumulate(s, v.data, v.dims, r.layout, r.activation);
          }
          if (!grams.length) each();
        },
        cancel,
      );
    }
    // Keyed by statsKey (the activation's name, or name and Conv geometry for patches).
    const stats = new Map<string, InputStats>();
    for (const [key, { s }] of here) stats.set(key, s);
    await onBatch(stats);
  }
  return { passes: batches.length, peakBytes, activations };
}

/** The sum of several activations' statistics (a weight read by several nodes). */
export function sumStats(parts: readonly InputStats[]): InputStats {
  const k = parts[0]!.k;
  if (parts.length === 1) return parts[0]!;
  const out: InputStats = { k, rows: 0, sumSq: new Float64Array(k), sumAbs: new Float64Array(k), xtx: parts.every((p) => p.xtx) ? new Float64Array(k * k) : undefined };
  for (const p of parts) {
    out.rows += p.rows;
    for (let i = 0; i < k; i++) {
      out.sumSq[i]! += p.sumSq[i]!;
      out.sumAbs[i]! += p.sumAbs[i]!;
    }
    if (out.xtx) for (let i = 0; i < k * k; i++) out.xtx[i]! += p.xtx![i]!;
  }
  return out;
}

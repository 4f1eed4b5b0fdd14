import type { InferenceSession } from 'onnxruntime-node';
import { performance } from 'node:perf_hooks';
import { loadOrt } from './ort.js';
import { makeFeeds, type Feeds, type UserArray } from './inputs.js';

// The measured latency of the original and the quantized model in onnxruntime, with the
// same session options and inputs: one intra-op thread, and onnxruntime's default thread
// count. Both sessions are open together and run in turn (a shared machine's load then
// weighs on both alike). Bounded: one warm-up run each, then pairs of runs until 2 ×
// `budgetMs` is spent or `maxRuns` pairs are done (at least `minRuns`); figures are medians.

export const LATENCY_SETTINGS = "graphOptimizationLevel 'all', interOpNumThreads 1, CPU memory arena on";

export interface LatencyRow {
  /** 1, or 0 for onnxruntime's default (one per physical core). */
  intra_op_threads: number;
  original_ms: number;
  quantized_ms: number;
  /** original_ms / quantized_ms: above 1 the quantized model is faster. */
  speedup: number;
  original_runs: number;
  quantized_runs: number;
}

export type LatencyReport =
  | { status: 'ok'; session_options: string; rows: LatencyRow[]; elapsed_ms: number }
  | { status: 'skipped'; reason: string };

export type ModelSource = { bytes: Uint8Array; externalData?: { path: string; data: Uint8Array }[] | undefined } | { path: string };

export interface LatencyOptions {
  budgetMs?: number | undefined;
  minRuns?: number | undefined;
  maxRuns?: number | undefined;
  user?: Map<string, UserArray> | undefined;
  /** Symbolic dimension values, as validation takes them (the same inputs for both). */
  dims?: Readonly<Record<string, number>> | undefined;
  maxElements?: number | undefined;
  /** Runs between sessions; may throw to stop (a cancelled task). */
  checkpoint?: (() => void) | undefined;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function open(model: ModelSource, threads: number): Promise<InferenceSession> {
  const ort = await loadOrt();
  const options: InferenceSession.SessionOptions = { graphOptimizationLevel: 'all', intraOpNumThreads: threads, interOpNumThreads: 1, logSeverityLevel: 3 };
  return 'path' in model ? ort.InferenceSession.create(model.path, options) : ort.InferenceSession.create(model.bytes, { ...options, externalData: model.externalData });
}

/** Runs the two sessions in turn, so load on a shared machine hits both alike; returns each one's times. */
async function timeRuns(a: InferenceSession, b: InferenceSession, feeds: Feeds, o: Required<Pick<LatencyOptions, 'budgetMs' | 'minRuns' | 'maxRuns'>>): Promise<[number[], number[]]> {
  await a.run(feeds);
  await b.run(feeds);
  const ta: number[] = [];
  const tb: number[] = [];
  const start = performance.now();
  while (ta.length < o.maxRuns && (ta.length < o.minRuns || performance.now() - start < 2 * o.budgetMs)) {
    for (const [s, t] of [[a, ta], [b, tb]] as const) {
      const t0 = performance.now();
      await s.run(feeds);
      t.push(performance.now() - t0);
    }
    // One pair past the whole budget: the models are too slow to repeat within the bound.
    if (ta.length === 1 && ta[0]! + tb[0]! > 2 * o.budgetMs) break;
  }
  return [ta, tb];
}

export async function measureLatency(original: ModelSource, quantized: ModelSource, opts: LatencyOptions = {}): Promise<LatencyReport> {
  const t0 = performance.now();
  const bounds = { budgetMs: opts.budgetMs ?? 1500, minRuns: opts.minRuns ?? 3, maxRuns: opts.maxRuns ?? 50 };
  const ort = await loadOrt();
  const rows: LatencyRow[] = [];
  try {
    for (const threads of [1, 0]) {
      opts.checkpoint?.();
      const a = await open(original, threads);
      try {
        const b = await open(quantized, threads);
        try {
          const fed = makeFeeds(ort.Tensor, a.inputMetadata, opts.user, { dims: opts.dims, maxElements: opts.maxElements ?? Number.MAX_SAFE_INTEGER });
          if (!('feeds' in fed)) return { status: 'skipped', reason: `${fed.reason}; ${fed.send}` };
          const [ta, tb] = await timeRuns(a, b, fed.feeds, bounds);
          const oMs = median(ta);
          const qMs = median(tb);
          rows.push({ intra_op_threads: threads, original_ms: oMs, quantized_ms: qMs, speedup: oMs / qMs, original_runs: ta.length, quantized_runs: tb.length });
        } finally {
          await b.release();
        }
      } finally {
        await a.release();
      }
    }
  } catch (err) {
    if ((err as { code?: string }).code === 'QUANT_ERR_ABORTED' || (err as Error).name === 'AbortError') throw err;
    return { status: 'skipped', reason: `onnxruntime could not run both models: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]!.slice(0, 300)}` };
  }
  return { status: 'ok', session_options: LATENCY_SETTINGS, rows, elapsed_ms: Math.round(performance.now() - t0) };
}

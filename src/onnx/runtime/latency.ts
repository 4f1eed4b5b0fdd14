import type { InferenceSession } from 'onnxruntime-node';
import { performance } from 'node:perf_hooks';
import { loadOrt } from './ort.js';
import { makeFeeds, type Feeds, type UserArray } from './inputs.js';

// The measured latency of the original and the quantized model in onnxruntime, with the
// same session options and inputs: one intra-op thread, and onnxruntime's default thread
// count. Bounded: each (model, threads) pair gets one warm-up run and then runs until
// `budgetMs` is spent or `maxRuns` are done (at least `minRuns`); the figure is the median.

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

async function timeRuns(s: InferenceSession, feeds: Feeds, o: Required<Pick<LatencyOptions, 'budgetMs' | 'minRuns' | 'maxRuns'>>): Promise<number[]> {
  await s.run(feeds);
  const times: number[] = [];
  const start = performance.now();
  while (times.length < o.maxRuns && (times.length < o.minRuns || performance.now() - start < o.budgetMs)) {
    const t0 = performance.now();
    await s.run(feeds);
    times.push(performance.now() - t0);
    // One run past the whole budget: the model is too slow to repeat within the bound.
    if (times.length === 1 && times[0]! > o.budgetMs) break;
  }
  return times;
}

export async function measureLatency(original: ModelSource, quantized: ModelSource, opts: LatencyOptions = {}): Promise<LatencyReport> {
  const t0 = performance.now();
  const bounds = { budgetMs: opts.budgetMs ?? 1500, minRuns: opts.minRuns ?? 3, maxRuns: opts.maxRuns ?? 50 };
  const ort = await loadOrt();
  const rows: LatencyRow[] = [];
  try {
    for (const threads of [1, 0]) {
      const ms: number[] = [];
      const runs: number[] = [];
      let feeds: Feeds | undefined;
      for (const model of [original, quantized]) {
        opts.checkpoint?.();
        const s = await open(model, threads);
        try {
          if (!feeds) {
            const fed = makeFeeds(ort.Tensor, s.inputMetadata, opts.user);
            if (typeof fed === 'string') return { status: 'skipped', reason: fed };
            feeds = fed.feeds;
          }
          const times = await timeRuns(s, feeds, bounds);
          ms.push(median(times));
          runs.push(times.length);
        } finally {
          await s.release();
        }
      }
      rows.push({ intra_op_threads: threads, original_ms: ms[0]!, quantized_ms: ms[1]!, speedup: ms[0]! / ms[1]!, original_runs: runs[0]!, quantized_runs: runs[1]! });
    }
  } catch (err) {
    if ((err as { code?: string }).code === 'QUANT_ERR_ABORTED' || (err as Error).name === 'AbortError') throw err;
    return { status: 'skipped', reason: `onnxruntime could not run both models: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]!.slice(0, 300)}` };
  }
  return { status: 'ok', session_options: LATENCY_SETTINGS, rows, elapsed_ms: Math.round(performance.now() - t0) };
}

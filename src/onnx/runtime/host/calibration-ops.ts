import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { calibrateActivations, type ActivationRange } from '../../activations/calibrate.js';
import { forEachStatsBatch, type InputStats } from '../../activations/weight-stats.js';
import { decodeModel } from '../../proto/decode.js';
import type { OnnxModel } from '../../proto/model.js';
import { measureActivationErrors, type ActivationErrors } from '../activation-error.js';
import { compareOnSamples, type HeldBackOutput } from '../held-back.js';
import type { HostRequest, HostModel, StatsFile } from './protocol.js';
import { openSamples } from './samples.js';
import { dirname } from 'node:path';

// The host's side of static calibration and the data-aware statistics: the same functions
// the worker would run (calibrate.ts, activation-error.ts, weight-stats.ts, held-back.ts),
// on the staged model and samples, so the figures are the ones an in-process run gives.

type Op<K extends HostRequest['op']> = Extract<HostRequest, { op: K }>;
export type Progress = (done: number, total: number) => void;

function load(m: HostModel): { model: OnnxModel; besideDir: string | undefined } {
  return { model: decodeModel(readFileSync(m.path)), besideDir: m.beside ? dirname(m.path) : undefined };
}

async function withSamples<T>(req: { samples: Op<'calibrate'>['samples'] }, fn: (s: ReturnType<typeof openSamples>['samples']) => Promise<T>): Promise<T> {
  const open = openSamples(req.samples);
  try {
    return await fn(open.samples);
  } finally {
    open.close();
  }
}

export function calibrateOp(req: Op<'calibrate'>, progress: Progress): Promise<Map<string, ActivationRange>> {
  const { model, besideDir } = load(req.model);
  return withSamples(req, (samples) => calibrateActivations(model, req.names, samples, { ...req.opts, besideDir, onSample: progress }));
}

export function activationErrorsOp(req: Op<'activationErrors'>): Promise<ActivationErrors> {
  const f = load(req.float);
  const q = load(req.quantized);
  return withSamples(req, (samples) => measureActivationErrors(f.model, q.model, req.tensors, samples, { threads: req.threads, besideDir: f.besideDir }, new Map(req.renamed)));
}

function writeAll(fd: number, a: Float64Array): void {
  const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, Math.min(bytes.length - done, 2 ** 30));
}

/** One batch's sums go to a file, not through IPC: see host-runs.ts for why. */
export async function statsBatchOp(req: Op<'statsBatch'>, progress: Progress): Promise<StatsFile> {
  const { model, besideDir } = load(req.model);
  let got: ReadonlyMap<string, InputStats> | undefined;
  const pass = await withSamples(req, (samples) =>
    forEachStatsBatch(model, [req.batch], samples, { full: req.full, maxBytes: req.maxBytes, onSample: progress, besideDir }, (stats) => {
      got = stats;
    }),
  );
  const stats: StatsFile['stats'] = [];
  const fd = openSync(req.out, 'w');
  try {
    for (const [name, s] of got ?? new Map<string, InputStats>()) {
      writeAll(fd, s.sumSq);
      writeAll(fd, s.sumAbs);
      if (s.xtx) writeAll(fd, s.xtx);
      stats.push({ name, k: s.k, rows: s.rows, xtxLength: s.xtx?.length ?? 0 });
    }
  } finally {
    closeSync(fd);
  }
  return { file: req.out, stats, peakBytes: pass.peakBytes, activations: pass.activations };
}

export function heldBackOp(req: Op<'heldBack'>): Promise<HeldBackOutput[]> {
  return withSamples(req, (samples) => compareOnSamples({ path: req.float }, { path: req.quantized }, samples));
}

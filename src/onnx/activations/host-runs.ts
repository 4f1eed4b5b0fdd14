import { closeSync, openSync, readSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Errors, isQuantError } from '../../errors.js';
import { checkpoint, isCancelled, type CancelFlag } from '../../pool/cancel.js';
import { encodeModelBytes } from '../proto/encode.js';
import type { OnnxModel } from '../proto/model.js';
import type { ActivationErrors } from '../runtime/activation-error.js';
import { calibrationHost, HostCrashed, type HostCall, type RequestOptions } from '../runtime/host/client.js';
import type { HostModel, SampleSpec, StatsFile } from '../runtime/host/protocol.js';
import { sampleSpec, writeSamples } from '../runtime/host/samples.js';
import { newStagingDir, stageFiles } from '../runtime/host/stage.js';
import type { HeldBackOutput } from '../runtime/held-back.js';
import { writeNewFile } from '../runtime/session-model.js';
import { message } from '../runtime/validate.js';
import type { ActivationRange } from './calibrate.js';
import type { CalibrationSamples } from './calibration-data.js';
import { MeasurementLost, type FloatRuns } from './float-runs.js';
import type { InputStats, StatsPasses } from './weight-stats.js';

// FloatRuns in the onnxruntime host process (runtime/host/child.ts): the float model is
// staged once per request (its upload bytes and external data files, into tmpfs when it has
// room), or used where it is when it is on disk with its external data beside it (a job's
// input directory: onnxruntime refuses external data reached through a symbolic link out of
// the model's directory, so the files cannot be linked into a staging directory instead).
// The samples are staged once (samples.ts), each quantized model beside the float one when
// a run needs it. A
// crash of onnxruntime there fails this request with a 400 naming the stage, except in the
// measurements made once the quantized model exists (static's, the data-aware held-back
// comparison), which cost only the measurement; the host starts afresh on the next request
// and the service keeps serving.
//
// A batch's statistics (K×K float64 sums, up to HESSIAN_MAX_BYTES) come back as a file in
// the staging directory, not as an IPC message: Node's advanced-serialization IPC would
// hold the serialized message on the host's side and the reassembled one on this side on
// top of both processes' arrays, and pipes run far below a tmpfs copy. The file is read
// into one Float64Array here and removed at once, so at most two copies of one batch's sums
// exist during the hand-over (the file and this array), and one after.

export type FloatSource =
  | {
      /** The decoded model the runs are called with. */
      model: OnnxModel;
      /** Its bytes as uploaded (staged as they are, not re-encoded). */
      bytes: Uint8Array;
      /** Its external data files, by location. */
      files: readonly { path: string; data: Uint8Array }[];
    }
  | {
      model: OnnxModel;
      /** The model's file, its external data files beside it by location (a job's input directory). */
      path: string;
      hasExternalData: boolean;
    };

function crashed(err: unknown, stage: string): never {
  if (err instanceof HostCrashed) {
    throw new Errors.Onnx(`onnxruntime crashed (${err.signal ?? `exit code ${err.exitCode}`}) ${stage}; it ran in a separate process, so only this request is lost`);
  }
  throw err;
}

/**
 * A crash or an onnxruntime error that costs only the measurement: the quantized model is
 * made and is still returned. The host sends onnxruntime's errors back as plain Errors; the
 * service's own (cancelled, no room to stage) keep their code and fail the request.
 */
function measurementLost(err: unknown, stage: string): never {
  if (err instanceof HostCrashed) {
    throw new MeasurementLost(`onnxruntime crashed (${err.signal ?? `exit code ${err.exitCode}`}) ${stage}; it ran in a separate process, so only this measurement is lost`);
  }
  if (err instanceof Error && !isQuantError(err)) throw new MeasurementLost(`onnxruntime failed ${stage}: ${message(err)}`);
  throw err;
}

function readAll(path: string, into: Float64Array): void {
  const bytes = new Uint8Array(into.buffer, into.byteOffset, into.byteLength);
  const fd = openSync(path, 'r');
  try {
    for (let done = 0; done < bytes.length; ) {
      const n = readSync(fd, bytes, done, Math.min(bytes.length - done, 2 ** 30), done);
      if (n === 0) throw new Error(`the onnxruntime host's statistics file ${path} ends early`);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
}

export class HostRuns implements FloatRuns {
  readonly #host = calibrationHost();
  readonly #float: FloatSource;
  readonly #cancel: CancelFlag | undefined;
  /** This request's staging directory (samples, statistics; the float model when it came in memory). */
  #staged: { dir: string; dispose(): void } | undefined;
  #floatPath: string | undefined;
  readonly #samples = new WeakMap<readonly ArrayBufferView[], SampleSpec['data']>();
  #n = 0;

  readonly #reserve: number;

  /** `samples`: the request's calibration samples, so the staging directory is chosen with room for them too. */
  constructor(float: FloatSource, cancel?: CancelFlag, samples?: CalibrationSamples) {
    this.#float = float;
    this.#cancel = cancel;
    const d = samples?.origin?.data;
    this.#reserve = d?.kind === 'arrays' ? d.arrays.reduce((s, a) => s + a.byteLength, 0) : 0;
  }

  #dir(): string {
    if (!this.#staged) {
      const f = this.#float;
      try {
        if ('bytes' in f) {
          const s = stageFiles(f.bytes, f.files, this.#reserve);
          this.#staged = s;
          this.#floatPath = s.path;
        } else {
          const dir = newStagingDir(this.#reserve);
          this.#staged = { dir, dispose: () => rmSync(dir, { recursive: true, force: true }) };
          this.#floatPath = f.path;
        }
      } catch (err) {
        throw new Errors.Onnx(`could not hand the model to onnxruntime: ${message(err)}`);
      }
    }
    return this.#staged.dir;
  }

  get #beside(): boolean {
    const f = this.#float;
    return 'bytes' in f ? f.files.length > 0 : f.hasExternalData;
  }

  /** The model as the host finds it: the float model, or an encoded copy written beside it (where its external data resolves). */
  #model(m: OnnxModel): { ref: HostModel; done(): void } {
    const dir = this.#dir();
    const beside = this.#beside;
    if (m === this.#float.model) return { ref: { path: this.#floatPath!, beside }, done: () => {} };
    const file = writeNewFile(beside ? dirname(this.#floatPath!) : dir, 'quantd-quantized', encodeModelBytes(m));
    return { ref: { path: file, beside }, done: () => rmSync(file, { force: true }) };
  }

  #spec(samples: CalibrationSamples): SampleSpec {
    const dir = this.#dir();
    return sampleSpec(samples, (arrays) => {
      let data = this.#samples.get(arrays);
      if (!data) {
        const perSample = arrays.map((a, k) => (a as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT * samples.inputs[k]!.dims.reduce((x, y) => x * y, 1));
        try {
          data = { kind: 'file', ...writeSamples(arrays, perSample, dir) };
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOSPC') throw new Errors.StorageFull(`no room to hand the calibration samples to onnxruntime in ${dir} (ORT_STAGING_DIR chooses the place): ${message(err)}`);
          throw err;
        }
        this.#samples.set(arrays, data);
      }
      return data;
    });
  }

  async #ask<T>(stage: string, req: HostCall, progress?: RequestOptions['progress'], onCrash: (err: unknown, stage: string) => never = crashed): Promise<T> {
    checkpoint(this.#cancel);
    const cancel = this.#cancel;
    const cancelled = cancel ? () => isCancelled(cancel) : undefined;
    try {
      return (await this.#host.send(req, { cancelled, holds: [this.#dir()], progress })) as T;
    } catch (err) {
      return onCrash(err, stage);
    }
  }

  calibrate: FloatRuns['calibrate'] = async (model, names, samples, opts) => {
    const m = this.#model(model);
    try {
      const { method, percentile, numBins, symmetric, bits, intraOpNumThreads } = opts;
      return await this.#ask<Map<string, ActivationRange>>(
        'calibrating activation ranges (running the float model on the calibration samples)',
        { op: 'calibrate', model: m.ref, names: [...names], samples: this.#spec(samples), opts: { method, percentile, numBins, symmetric, bits, intraOpNumThreads } },
        opts.onSample,
      );
    } finally {
      m.done();
    }
  };

  activationErrors: FloatRuns['activationErrors'] = async (float, quantized, tensors, samples, o = {}, renamed = new Map()) => {
    const f = this.#model(float);
    const q = this.#model(quantized);
    try {
      return await this.#ask<ActivationErrors>(
        'measuring the quantized model against the float one on the held-back samples',
        {
          op: 'activationErrors',
          float: f.ref,
          quantized: q.ref,
          tensors: [...tensors],
          samples: this.#spec(samples as CalibrationSamples),
          renamed: [...renamed],
          threads: o.threads,
        },
        undefined,
        measurementLost,
      );
    } finally {
      f.done();
      q.done();
    }
  };

  statsBatches: FloatRuns['statsBatches'] = async (model, batches, samples, opts, onBatch) => {
    const m = this.#model(model);
    const total = batches.length * samples.count;
    let peakBytes = 0;
    let activations = 0;
    try {
      for (const [b, batch] of batches.entries()) {
        const out = join(this.#dir(), `stats-${++this.#n}.bin`);
        let got: StatsFile;
        try {
          got = await this.#ask<StatsFile>(
            'gathering the activation statistics (running the float model on the calibration samples)',
            { op: 'statsBatch', model: m.ref, batch: [...batch], samples: this.#spec(samples), full: opts.full, maxBytes: opts.maxBytes, out },
            opts.onSample && ((done) => opts.onSample!(b * samples.count + done, total)),
          );
        } catch (err) {
          rmSync(out, { force: true });
          throw err;
        }
        const stats = this.#readStats(got);
        peakBytes = Math.max(peakBytes, got.peakBytes);
        activations += got.activations;
        await onBatch(stats);
      }
    } finally {
      m.done();
    }
    return { passes: batches.length, peakBytes, activations } satisfies StatsPasses;
  };

  #readStats(got: StatsFile): Map<string, InputStats> {
    const all = new Float64Array(got.stats.reduce((s, x) => s + 2 * x.k + x.xtxLength, 0));
    try {
      readAll(got.file, all);
    } finally {
      rmSync(got.file, { force: true });
    }
    const stats = new Map<string, InputStats>();
    let at = 0;
    const take = (n: number) => all.subarray(at, (at += n));
    for (const x of got.stats) {
      const sumSq = take(x.k);
      const sumAbs = take(x.k);
      stats.set(x.name, { k: x.k, rows: x.rows, sumSq, sumAbs, xtx: x.xtxLength ? take(x.xtxLength) : undefined });
    }
    return stats;
  }

  heldBack: FloatRuns['heldBack'] = async (float, quantized, samples) => {
    const f = this.#model(float);
    const q = this.#model(quantized);
    try {
      return await this.#ask<HeldBackOutput[]>(
        'measuring the quantized model on the held-back samples',
        { op: 'heldBack', float: f.ref.path, quantized: q.ref.path, samples: this.#spec(samples) },
        undefined,
        measurementLost,
      );
    } finally {
      f.done();
      q.done();
    }
  };

  /** Removes the staged files, here and from the host's list (it would remove them if this worker went away). */
  dispose(): void {
    const s = this.#staged;
    if (!s) return;
    this.#staged = undefined;
    s.dispose();
    if (this.#host.pid !== undefined) this.#host.send({ op: 'ping' }, { cleanup: [s.dir] }).catch(() => {});
  }
}

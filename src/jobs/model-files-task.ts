import { join } from 'node:path';
import type { ModelTaskOptions, Task, TaskLimits, WeightsTaskOptions } from '../pool/messages.js';
import { outputFilename } from '../pool/tasks/model-reply.js';
import { weightsFilename } from '../pool/tasks/quantize-weights.js';
import type { StorageRoom } from '../pool/storage-ledger.js';
import type { JobRecord } from './types.js';

/** config.json among a weights job's files (shards always end in .safetensors). */
export const WEIGHTS_CONFIG_NAME = 'config.json';

/** What a job's files become as a pool task, whichever runner (local or queue) runs it. */
export function modelFilesTask(
  job: JobRecord,
  dirs: { input: string; output: string },
  run: {
    limits: TaskLimits;
    maxInlineBytes: number | undefined;
    progressChannel: string;
    cancel: Int32Array;
    /** The ledger its spill file and results reserve their bytes from, under JOBS_MAX_BYTES. */
    storage?: StorageRoom | undefined;
    spillBytes?: number | undefined;
  },
): Extract<Task, { op: 'quantizeModelFiles' | 'quantizeWeightsFiles' }> {
  if (job.kind === 'weights') return weightsFilesTask(job, dirs, run);
  return {
    op: 'quantizeModelFiles',
    inputDir: dirs.input,
    model: job.model.file,
    external: job.external.map((f) => ({ name: f.name, file: f.file })),
    inputs: job.inputs?.file,
    calibration: job.calibration?.file,
    outputDir: dirs.output,
    outputName: outputFilename(job.filename, job.options.bits),
    maxInlineBytes: run.maxInlineBytes,
    spillBytes: run.spillBytes,
    storage: run.storage,
    options: job.options as ModelTaskOptions,
    limits: run.limits,
    progressChannel: run.progressChannel,
    cancel: run.cancel,
  };
}

function weightsFilesTask(
  job: JobRecord,
  dirs: { input: string; output: string },
  run: { limits: TaskLimits; progressChannel: string; cancel: Int32Array; storage?: StorageRoom | undefined },
): Extract<Task, { op: 'quantizeWeightsFiles' }> {
  const at = (file: string) => join(dirs.input, file);
  const sharded = job.model.name === 'index';
  const config = job.external.find((f) => f.name === WEIGHTS_CONFIG_NAME);
  // Shards keep their names (the index names them); one file is renamed as the synchronous endpoint names it.
  const shards = sharded
    ? job.external.filter((f) => f !== config).map((f) => ({ name: f.name, path: at(f.file) }))
    : [{ name: weightsFilename(job.model.name, job.options.bits), path: at(job.model.file), label: job.filename }];
  return {
    op: 'quantizeWeightsFiles',
    shards,
    index: sharded ? at(job.model.file) : undefined,
    config: config ? at(config.file) : undefined,
    outputDir: dirs.output,
    options: job.options as WeightsTaskOptions,
    limits: run.limits,
    progressChannel: run.progressChannel,
    cancel: run.cancel,
    storage: run.storage,
  };
}

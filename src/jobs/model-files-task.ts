import type { Task, TaskLimits } from '../pool/messages.js';
import { outputFilename } from '../pool/tasks/model-reply.js';
import type { JobRecord } from './types.js';

/** What a job's files become as a pool task, whichever runner (local or queue) runs it. */
export function modelFilesTask(
  job: JobRecord,
  dirs: { input: string; output: string },
  run: { limits: TaskLimits; maxInlineBytes: number | undefined; progressChannel: string; cancel: Int32Array },
): Extract<Task, { op: 'quantizeModelFiles' }> {
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
    options: job.options,
    limits: run.limits,
    progressChannel: run.progressChannel,
    cancel: run.cancel,
  };
}

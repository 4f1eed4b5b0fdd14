import { BroadcastChannel } from 'node:worker_threads';
import { join } from 'node:path';
import { compareRun, referenceRun } from '../../onnx/runtime/validate.js';
import { FileExternalData, readWholeFile } from '../../onnx/io/files.js';
import { writeModelFiles } from '../../onnx/io/write-model.js';
import { checkpoint } from '../cancel.js';
import type { Task, TaskReply } from '../messages.js';
import { buildReport, prepare, quantizeStage, stageTimes, timed, VALIDATION_OFF, type StageTimes } from './model-pipeline.js';
import { summaryHeader } from './model-reply.js';
import { jsonBody } from './report.js';

type FilesTask = Extract<Task, { op: 'quantizeModelFiles' }>;

export type WorkerProgress =
  | { phase: 'quantizing'; tensorsDone: number; tensorsTotal: number; bytesDone: number; bytesTotal: number }
  | { phase: 'reference' | 'writing' | 'validating' };

/**
 * A job: the model, its external data and the result are files, so neither side of a
 * model past 2 GiB is ever one buffer. The bytes written are the synchronous endpoint's.
 */
export async function runQuantizeModelFiles(task: FilesTask): Promise<TaskReply> {
  const channel = new BroadcastChannel(task.progressChannel);
  const post = (p: WorkerProgress) => channel.postMessage(p);
  const external = new FileExternalData(new Map(task.external.map((f) => [f.name, join(task.inputDir, f.file)])));
  try {
    const times: StageTimes = { decode: 0, encode: 0, validation: 0 };
    const modelPath = join(task.inputDir, task.model);
    const sizes = external.sizes();
    const { model, prepared } = await timed(times, 'decode', () => {
      const model = readWholeFile(modelPath);
      const inputs = task.inputs ? readWholeFile(join(task.inputDir, task.inputs)) : undefined;
      return { model, prepared: prepare({ model, external, externalSizes: sizes, inputs, options: task.options, limits: task.limits }) };
    });
    if (task.options.validate) post({ phase: 'reference' });
    const reference = task.options.validate ? await timed(times, 'validation', () => referenceRun({ path: modelPath }, { user: prepared.user })) : VALIDATION_OFF;
    checkpoint(task.cancel);
    const q = quantizeStage(prepared, (p) => {
      checkpoint(task.cancel);
      post({ phase: 'quantizing', ...p });
    });
    post({ phase: 'writing' });
    const artifacts = await timed(times, 'encode', () => writeModelFiles(q.result.model, external, task.outputDir, task.outputName, task.maxInlineBytes));
    checkpoint(task.cancel);
    post({ phase: 'validating' });
    const validation =
      'status' in reference ? reference : await timed(times, 'validation', () => compareRun(reference, { path: artifacts[0]!.path }, () => checkpoint(task.cancel)));
    const inBytes = model.length + [...sizes.values()].reduce((a, b) => a + b, 0);
    const report = buildReport(q, inBytes, artifacts.reduce((s, a) => s + a.size, 0), validation, times);
    const meta = { report, summaryHeader: summaryHeader(report), artifacts: artifacts.map(({ name, size, crc }) => ({ name, size, crc })) };
    return { body: jsonBody({ ok: true }), contentType: 'application/json', log: {}, meta, stages: stageTimes(times, q.quantizeMs) };
  } finally {
    external.close();
    channel.close();
  }
}

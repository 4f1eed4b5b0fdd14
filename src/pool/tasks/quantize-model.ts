import { memoryExternalData } from '../../onnx/io/external.js';
import { Errors } from '../../errors.js';
import { compareRun, referenceRun } from '../../onnx/runtime/validate.js';
import { inlineModelParts, PROTOBUF_LIMIT } from '../../onnx/io/write-model.js';
import { checkpoint } from '../cancel.js';
import type { Task, TaskReply } from '../messages.js';
import { buildReport, prepare, quantizeStage, stageTimes, timed, VALIDATION_OFF, type StageTimes } from './model-pipeline.js';
import { modelReply } from './model-reply.js';
import { measureLatency } from '../../onnx/runtime/latency.js';
import { calibrationSamples, isStatic, needsSamples, staticReportOf, staticStage } from './static-stage.js';
import { dataAwareStage, isDataAwareResult, isDataAwareTask } from './data-aware-stage.js';

type ModelTask = Extract<Task, { op: 'quantizeModel' }>;

/**
 * The synchronous endpoint: everything in memory. The output is self-contained (tensors
 * that came in external files are written inline); past protobuf's 2 GiB limit the jobs
 * API, which writes external data, is the way.
 */
export async function runQuantizeModel(task: ModelTask): Promise<TaskReply> {
  const files = new Map(task.external.map((f) => [f.name, f.bytes]));
  const external = memoryExternalData(files);
  const sizes = new Map([...files].map(([k, v]) => [k, v.length]));
  const times: StageTimes = { decode: 0, encode: 0, validation: 0 };
  const prepared = await timed(times, 'decode', () =>
    prepare({ model: task.model, external, externalSizes: sizes, inputs: task.inputs, hasCalibration: task.calibration !== undefined, options: task.options, limits: task.limits }),
  );
  const samples = needsSamples(task.options) ? await timed(times, 'decode', () => calibrationSamples(prepared, task.calibration, task.limits)) : undefined;
  const original = { bytes: task.model, externalData: task.external.length ? task.external.map((f) => ({ path: f.name, data: f.bytes })) : undefined };
  const reference = task.options.validate ? await timed(times, 'validation', () => referenceRun(original, { user: prepared.user, dims: task.options.dims, maxElements: task.limits.maxElements })) : VALIDATION_OFF;
  checkpoint(task.cancel);
  const externalData = original.externalData;
  const q = !samples
    ? quantizeStage(prepared, () => checkpoint(task.cancel))
    : isDataAwareTask(prepared)
      ? await dataAwareStage(prepared, samples, task.limits, { cancel: task.cancel, externalData, onProgress: () => checkpoint(task.cancel) })
      : await staticStage(prepared, samples, { cancel: task.cancel, externalData });
  const model = await timed(times, 'encode', () => {
    const parts = inlineModelParts(q.result.model, external);
    if (parts.length > PROTOBUF_LIMIT) {
      throw new Errors.Onnx(`the quantized model is ${parts.length} bytes, past protobuf's 2 GiB limit for one file: use POST /v1/jobs, which writes external data`);
    }
    return parts.concat();
  });
  checkpoint(task.cancel);
  const validation =
    'status' in reference ? reference : await timed(times, 'validation', () => compareRun(reference, { bytes: model }, () => checkpoint(task.cancel)));
  const inBytes = task.model.length + task.external.reduce((s, f) => s + f.bytes.length, 0);
  checkpoint(task.cancel);
  const latency = task.options.measure_latency ? await measureLatency(original, { bytes: model }, { user: prepared.user, dims: task.options.dims, maxElements: task.limits.maxElements, checkpoint: () => checkpoint(task.cancel) }) : undefined;
  const staticPart = isStatic(q) ? await staticReportOf(q, { bytes: model }) : undefined;
  const report = buildReport(q, inBytes, model.length, validation, times, { latency, static: staticPart, dataAware: isDataAwareResult(q) ? q.dataAware : undefined });
  return { ...modelReply(task, model, report), stages: stageTimes(times, q) };
}

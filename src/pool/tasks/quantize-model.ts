import { performance } from 'node:perf_hooks';
import { memoryExternalData } from '../../onnx/io/external.js';
import { Errors } from '../../errors.js';
import { inlineModelParts, PROTOBUF_LIMIT } from '../../onnx/io/write-model.js';
import { checkpoint, isCancelled } from '../cancel.js';
import type { Task, TaskReply } from '../messages.js';
import { buildReport, prepare, quantizeStage, stageTimes, timed, VALIDATION_OFF, type StageTimes } from './model-pipeline.js';
import { modelReply } from './model-reply.js';
import { compareRunIsolated, measureLatencyIsolated, referenceRunIsolated, releaseReference, type HostReference, type ReferenceFailure } from '../../onnx/runtime/isolated.js';
import { calibrationSamples, isStatic, needsSamples, staticReportOf, staticStage } from './static-stage.js';
import { HostRuns } from '../../onnx/activations/host-runs.js';
import { dataAwareStage, isDataAwareResult, isDataAwareTask } from './data-aware-stage.js';

type ModelTask = Extract<Task, { op: 'quantizeModel' }>;

/**
 * The synchronous endpoint: everything in memory. The output is self-contained (tensors
 * that came in external files are written inline); past protobuf's 2 GiB limit the jobs
 * API, which writes external data, is the way.
 *
 * The float model's reference run goes to the onnxruntime host process before quantizing
 * starts and runs there on another core while this thread quantizes; the quantized runs
 * follow once the model is encoded. The host holds the float model while this thread holds
 * the quantized one: ~1.25 × the model for int8 at the peak, over two processes.
 */
export async function runQuantizeModel(task: ModelTask): Promise<TaskReply> {
  const files = new Map(task.external.map((f) => [f.name, f.bytes]));
  const external = memoryExternalData(files);
  const sizes = new Map([...files].map(([k, v]) => [k, v.length]));
  const times: StageTimes = { decode: 0, encode: 0, validation: 0 };
  const cancelled = () => isCancelled(task.cancel);
  const prepared = await timed(times, 'decode', () =>
    prepare({ model: task.model, external, externalSizes: sizes, inputs: task.inputs, hasCalibration: task.calibration !== undefined, options: task.options, limits: task.limits }),
  );
  const samples = needsSamples(task.options) ? await timed(times, 'decode', () => calibrationSamples(prepared, task.calibration, task.limits)) : undefined;
  const original = { bytes: task.model, externalData: task.external.length ? task.external.map((f) => ({ path: f.name, data: f.bytes })) : undefined };
  // Calibration and statistics runs go to the onnxruntime host, as validation does.
  const runs = samples ? new HostRuns({ model: prepared.input, bytes: task.model, files: original.externalData ?? [] }, task.cancel, samples) : undefined;
  // Started, not awaited: the staging copy happens now (counted), the run in the host.
  const t0 = performance.now();
  const pending: Promise<HostReference | ReferenceFailure> | undefined = task.options.validate
    ? referenceRunIsolated(original, { user: prepared.user, dims: task.options.dims, maxElements: task.limits.maxElements }, cancelled)
    : undefined;
  // A stage that did not run must stay exactly 0 (the metrics leave it out).
  if (pending) times.validation += performance.now() - t0;
  // A refusal (a 4xx for the inputs) is rethrown where it is awaited; never unhandled before that.
  pending?.catch(() => {});
  // If anything below throws, the host still answers: let its reference go when it does.
  const dropReference = () => void pending?.then((r) => 'ref' in r && releaseReference(r)).catch(() => {});
  try {
    checkpoint(task.cancel);
    const q = !samples
      ? quantizeStage(prepared, () => checkpoint(task.cancel))
      : isDataAwareTask(prepared)
        ? await dataAwareStage(prepared, samples, task.limits, { cancel: task.cancel, runs, onProgress: () => checkpoint(task.cancel) })
        : await staticStage(prepared, samples, { cancel: task.cancel, runs });
    runs?.dispose();
    const model = await timed(times, 'encode', () => {
      const parts = inlineModelParts(q.result.model, external);
      if (parts.length > PROTOBUF_LIMIT) {
        throw new Errors.Onnx(`the quantized model is ${parts.length} bytes, past protobuf's 2 GiB limit for one file: use POST /v1/jobs, which writes external data`);
      }
      return parts.concat();
    });
    checkpoint(task.cancel);
    // What the reference still takes after quantizing is the time validation adds.
    const reference = pending ? await timed(times, 'validation', () => pending) : VALIDATION_OFF;
    const validation = 'status' in reference ? reference : await timed(times, 'validation', () => compareRunIsolated(reference, { bytes: model }, cancelled, true));
    const inBytes = task.model.length + task.external.reduce((s, f) => s + f.bytes.length, 0);
    checkpoint(task.cancel);
    const latency = task.options.measure_latency
      ? await measureLatencyIsolated(original, { bytes: model }, { user: prepared.user, dims: task.options.dims, maxElements: task.limits.maxElements, checkpoint: () => checkpoint(task.cancel) })
      : undefined;
    const staticPart = isStatic(q) ? await staticReportOf(q, { bytes: model }) : undefined;
    const report = buildReport(q, inBytes, model.length, validation, times, { latency, static: staticPart, dataAware: isDataAwareResult(q) ? q.dataAware : undefined });
    return { ...modelReply(task, model, report), stages: stageTimes(times, q) };
  } finally {
    runs?.dispose();
    dropReference();
  }
}

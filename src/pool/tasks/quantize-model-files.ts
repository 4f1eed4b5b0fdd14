import { BroadcastChannel } from 'node:worker_threads';
import { join } from 'node:path';
import { compareRunIsolated, measureLatencyIsolated, referenceRunIsolated, releaseReference, type HostReference } from '../../onnx/runtime/isolated.js';
import { FileExternalData, readWholeFile } from '../../onnx/io/files.js';
import { writeModelFiles } from '../../onnx/io/write-model.js';
import { TensorSpill } from '../../onnx/io/spill.js';
import { uniqueIn } from '../../onnx/graph/edit.js';
import { checkpoint, isCancelled } from '../cancel.js';
import type { Task, TaskReply } from '../messages.js';
import { buildReport, prepare, quantizeStage, stageTimes, timed, VALIDATION_OFF, type StageTimes } from './model-pipeline.js';
import { reportWarnings, summaryHeader } from './model-reply.js';
import { calibrationSamples, isStatic, needsSamples, staticReportOf, staticStage } from './static-stage.js';
import { HostRuns } from '../../onnx/activations/host-runs.js';
import { dataAwareStage, isDataAwareResult, isDataAwareTask } from './data-aware-stage.js';
import { jsonBody } from './report.js';
import { JobRoom } from './job-room.js';

type FilesTask = Extract<Task, { op: 'quantizeModelFiles' }>;

/**
 * Quantized tensors a job holds in memory before the rest go to a spill file (io/spill.ts):
 * with one weight's scratch beside it, a job's memory stays near 1 GiB whatever the size.
 */
export const SPILL_BYTES = 512 * 2 ** 20;

export type WorkerProgress =
  | { phase: 'quantizing'; tensorsDone: number; tensorsTotal: number; bytesDone: number; bytesTotal: number }
  | { phase: 'calibrating'; samplesDone: number; samplesTotal: number }
  | { phase: 'reference' | 'writing' | 'validating' };

/**
 * A job: the model, its external data and the result are files, so neither side of a
 * model past 2 GiB is ever one buffer. The bytes written are the synchronous endpoint's.
 */
export async function runQuantizeModelFiles(task: FilesTask): Promise<TaskReply> {
  const channel = new BroadcastChannel(task.progressChannel);
  const post = (p: WorkerProgress) => channel.postMessage(p);
  const external = new FileExternalData(new Map(task.external.map((f) => [f.name, join(task.inputDir, f.file)])));
  let held: HostReference | undefined;
  let runs: HostRuns | undefined;
  // Named so that no upload's external file can be it.
  const spillName = uniqueIn(new Set(task.external.map((f) => f.name)), `${task.outputName}.spill`);
  const spillBytes = task.spillBytes ?? SPILL_BYTES;
  const room = task.storage ? new JobRoom(task.storage, task.outputDir) : undefined;
  const spill = new TensorSpill(task.outputDir, spillName, spillBytes, external, room?.spillLimit(spillBytes));
  let succeeded = false;
  try {
    const times: StageTimes = { decode: 0, encode: 0, validation: 0 };
    const modelPath = join(task.inputDir, task.model);
    const sizes = external.sizes();
    const { model, prepared } = await timed(times, 'decode', () => {
      const model = readWholeFile(modelPath);
      const inputs = task.inputs ? readWholeFile(join(task.inputDir, task.inputs)) : undefined;
      const hasCalibration = task.calibration !== undefined;
      return { model, prepared: prepare({ model, external, externalSizes: sizes, inputs, hasCalibration, options: task.options, limits: task.limits }) };
    });
    const samples =
      needsSamples(task.options)
        ? await timed(times, 'decode', () => calibrationSamples(prepared, task.calibration ? readWholeFile(join(task.inputDir, task.calibration)) : undefined, task.limits))
        : undefined;
    if (task.options.validate) post({ phase: 'reference' });
    // Before quantizing, not beside it as the synchronous endpoint does: a job's model may be
    // many GiB, and the host's float session is as big as the model.
    const cancelled = () => isCancelled(task.cancel);
    const reference = task.options.validate
      ? await timed(times, 'validation', () => referenceRunIsolated({ path: modelPath }, { user: prepared.user, dims: task.options.dims, maxElements: task.limits.maxElements }, cancelled))
      : VALIDATION_OFF;
    held = 'ref' in reference ? reference : undefined;
    checkpoint(task.cancel);
    // Calibration runs go to the onnxruntime host, on the model where it is: its external data files (stored by location beside it) are not read here.
    runs = samples ? new HostRuns({ model: prepared.input, path: modelPath, hasExternalData: task.external.length > 0 }, task.cancel, samples) : undefined;
    const onCalibrating = (done: number, total: number) => post({ phase: 'calibrating', samplesDone: done, samplesTotal: total });
    const q = samples && isDataAwareTask(prepared)
      ? await dataAwareStage(prepared, samples, task.limits, {
          cancel: task.cancel,
          runs,
          onCalibrating,
          onProgress: (p) => {
            checkpoint(task.cancel);
            post({ phase: 'quantizing', ...p });
          },
        })
      : samples
      ? await staticStage(prepared, samples, {
          cancel: task.cancel,
          runs,
          onCalibrating,
          onMeasuring: (round) => post({ phase: 'quantizing', tensorsDone: round, tensorsTotal: round + 1, bytesDone: 0, bytesTotal: 0 }),
        })
      : quantizeStage(
          prepared,
          (p) => {
            checkpoint(task.cancel);
            post({ phase: 'quantizing', ...p });
          },
          (tensors) => spill.hold(tensors),
        );
    runs?.dispose();
    post({ phase: 'writing' });
    const artifacts = await timed(times, 'encode', () => writeModelFiles(q.result.model, spill, task.outputDir, task.outputName, task.maxInlineBytes, room?.reserveResult));
    spill.close();
    checkpoint(task.cancel);
    post({ phase: 'validating' });
    const validation =
      'status' in reference ? reference : await timed(times, 'validation', () => compareRunIsolated(reference, { path: artifacts[0]!.path }, cancelled));
    const inBytes = model.length + [...sizes.values()].reduce((a, b) => a + b, 0);
    checkpoint(task.cancel);
    const result = { path: artifacts[0]!.path };
    const latency = task.options.measure_latency ? await measureLatencyIsolated({ path: modelPath }, result, { user: prepared.user, dims: task.options.dims, maxElements: task.limits.maxElements, checkpoint: () => checkpoint(task.cancel) }) : undefined;
    const staticPart = isStatic(q) ? await staticReportOf(q, result) : undefined;
    const report = buildReport(q, inBytes, artifacts.reduce((s, a) => s + a.size, 0), validation, times, { latency, static: staticPart, dataAware: isDataAwareResult(q) ? q.dataAware : undefined });
    const meta = { report, summaryHeader: summaryHeader(report), artifacts: artifacts.map(({ name, size, crc }) => ({ name, size, crc })) };
    succeeded = true;
    return { body: jsonBody({ ok: true }), contentType: 'application/json', log: {}, meta, stages: stageTimes(times, q), warnings: reportWarnings(report) };
  } finally {
    // First, so another job waits as little as possible for the room this one gives back.
    spill.close();
    if (!succeeded) room?.discardResults();
    runs?.dispose();
    if (held) releaseReference(held);
    external.close();
    channel.close();
  }
}

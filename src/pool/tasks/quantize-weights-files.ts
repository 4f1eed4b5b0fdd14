import { BroadcastChannel } from 'node:worker_threads';
import { quantizeCheckpointFiles, type CheckpointProgress } from '../../checkpoints/checkpoint-files.js';
import { checkpoint } from '../cancel.js';
import type { Task, TaskReply } from '../messages.js';
import type { WorkerProgress } from './quantize-model-files.js';
import { jsonBody } from './report.js';
import { weightsSummaryHeader } from './quantize-weights.js';
import { JobRoom } from './job-room.js';

type WeightsFilesTask = Extract<Task, { op: 'quantizeWeightsFiles' }>;

/**
 * A weights job (or the CLI): shards in, pack-quantized shards, the rewritten index and
 * config.json out, tensor by tensor; progress after each tensor, cancellation between them.
 */
export function runQuantizeWeightsFiles(task: WeightsFilesTask): TaskReply {
  const channel = task.progressChannel ? new BroadcastChannel(task.progressChannel) : undefined;
  const post = (p: WorkerProgress) => channel?.postMessage(p);
  const room = task.storage ? new JobRoom(task.storage, task.outputDir) : undefined;
  let succeeded = false;
  try {
    const files = { shards: task.shards, index: task.index, config: task.config };
    const onTensor = (p: CheckpointProgress) => {
      checkpoint(task.cancel);
      post({ phase: 'quantizing', ...p });
    };
    const { report, files: written, times } = quantizeCheckpointFiles(files, task.outputDir, task.options, task.limits, onTensor, room?.reserveResult);
    post({ phase: 'writing' });
    const meta = { report, summaryHeader: weightsSummaryHeader(report), artifacts: written.map(({ name, size, crc }) => ({ name, size, crc })) };
    const elements = report.tensors.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
    succeeded = true;
    return { body: jsonBody({ ok: true }), contentType: 'application/json', log: { elements }, meta, stages: { ...times } };
  } finally {
    if (!succeeded) room?.discardResults();
    channel?.close();
  }
}

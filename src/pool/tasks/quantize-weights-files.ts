import { BroadcastChannel } from 'node:worker_threads';
import { quantizeCheckpointFiles } from '../../checkpoints/checkpoint-files.js';
import { checkpoint } from '../cancel.js';
import type { Task, TaskReply } from '../messages.js';
import type { WorkerProgress } from './quantize-model-files.js';
import { jsonBody } from './report.js';
import { weightsSummaryHeader } from './quantize-weights.js';

type WeightsFilesTask = Extract<Task, { op: 'quantizeWeightsFiles' }>;

/**
 * A weights job (or the CLI): shards in, pack-quantized shards, the rewritten index and
 * config.json out, tensor by tensor; progress after each tensor, cancellation between them.
 */
export function runQuantizeWeightsFiles(task: WeightsFilesTask): TaskReply {
  const channel = task.progressChannel ? new BroadcastChannel(task.progressChannel) : undefined;
  const post = (p: WorkerProgress) => channel?.postMessage(p);
  try {
    const { report, files, times } = quantizeCheckpointFiles({ shards: task.shards, index: task.index, config: task.config }, task.outputDir, task.options, task.limits, (p) => {
      checkpoint(task.cancel);
      post({ phase: 'quantizing', ...p });
    });
    post({ phase: 'writing' });
    const meta = { report, summaryHeader: weightsSummaryHeader(report), artifacts: files.map(({ name, size, crc }) => ({ name, size, crc })) };
    const elements = report.tensors.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
    return { body: jsonBody({ ok: true }), contentType: 'application/json', log: { elements }, meta, stages: { ...times } };
  } finally {
    channel?.close();
  }
}

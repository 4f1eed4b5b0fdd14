import { randomUUID } from 'node:crypto';
import { BroadcastChannel } from 'node:worker_threads';
import type { WorkerProgress } from '../pool/tasks/quantize-model-files.js';
import { Progress, type ProgressUpdate } from './progress.js';

// A file task's progress messages (a BroadcastChannel, as jobs get them) drawn on stderr.

export function describeProgress(p: WorkerProgress): ProgressUpdate {
  if (p.phase === 'calibrating') return { phase: 'calibrating', fraction: p.samplesTotal > 0 ? p.samplesDone / p.samplesTotal : 1, detail: `${p.samplesDone}/${p.samplesTotal} samples` };
  if (p.phase !== 'quantizing') return { phase: p.phase };
  return { phase: 'quantizing', fraction: p.bytesTotal > 0 ? p.bytesDone / p.bytesTotal : 1, detail: `${p.tensorsDone}/${p.tensorsTotal} tensors` };
}

/** Runs `task` with a progress channel whose messages update the bar (unless quiet). */
export async function withProgress<T>(quiet: boolean, task: (channelName: string) => Promise<T>): Promise<T> {
  const progress = new Progress();
  const channelName = `quantd-cli-${randomUUID()}`;
  const channel = new BroadcastChannel(channelName);
  channel.onmessage = (e) => {
    if (!quiet) progress.update(describeProgress((e as { data: WorkerProgress }).data));
  };
  if (!quiet) progress.update({ phase: 'decoding' });
  try {
    return await task(channelName);
  } finally {
    channel.close();
    progress.done();
  }
}

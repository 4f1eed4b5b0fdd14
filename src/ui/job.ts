import { ApiError, apiJson, serverEvents } from './api.js';
import type { ModelReport } from './model-view.js';
import type { z } from 'zod';
import type { JobView as JobViewSchema } from '../http/schemas/jobs.js';

// A model through the jobs API: POST /v1/jobs, then its server-sent events drive the
// progress bar until `end`; then the report. The result is fetched when the user downloads.

type JobView = z.infer<typeof JobViewSchema>;

export interface JobOutcome {
  id: string;
  report: ModelReport;
  resultUrl: string;
}

export async function runJob(body: FormData, bar: HTMLProgressElement, label: HTMLElement): Promise<JobOutcome> {
  const created = await apiJson<JobView>('/v1/jobs', { method: 'POST', body });
  const show = (j: JobView) => {
    bar.value = Math.round(j.progress.fraction * 1000) / 10;
    const p = j.progress;
    const counts = p.phase === 'calibrating' && p.samples_total ? `sample ${p.samples_done ?? 0} of ${p.samples_total}` : p.tensors_total ? `tensor ${p.tensors_done} of ${p.tensors_total}` : '';
    label.textContent = `job ${j.id.slice(0, 8)}: ${j.status}, ${p.phase}${counts ? `, ${counts}` : ''} (${bar.value}%)`;
  };
  label.textContent = `job ${created.id.slice(0, 8)}: queued`;
  let last: JobView | undefined;
  for await (const e of serverEvents(created.links.events)) {
    last = JSON.parse(e.data) as JobView;
    show(last);
    if (e.event === 'end') break;
  }
  if (!last || (last.status !== 'succeeded' && last.status !== 'failed')) {
    // The stream closed early (a proxy, a restart): ask once more.
    last = await apiJson<JobView>(created.links.self);
    show(last);
  }
  if (last.status === 'failed') throw new ApiError(0, last.error?.code ?? 'JOB_FAILED', last.error?.message ?? 'the job failed');
  if (last.status !== 'succeeded') throw new ApiError(0, 'JOB_UNFINISHED', `job ${last.id} is ${last.status}; follow ${created.links.self}`);
  const report = await apiJson<ModelReport>(created.links.report);
  return { id: created.id, report, resultUrl: created.links.result };
}

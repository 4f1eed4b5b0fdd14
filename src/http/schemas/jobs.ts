import { z } from 'zod';
import { JOB_KINDS, JOB_PHASES, JOB_STATUSES } from '../../jobs/types.js';
import { ModelSummary } from './models.js';
import { WeightsSummary } from './weights.js';

export const JobParams = z.object({ id: z.string().uuid().describe('The id POST /v1/jobs returned') }).strict();

export const JobLinks = z.object({ self: z.string(), result: z.string(), report: z.string(), events: z.string() });

export const JobProgress = z.object({
  phase: z.enum(JOB_PHASES),
  tensors_done: z.number().int(),
  tensors_total: z.number().int(),
  bytes_done: z.number().int().describe('Float bytes of the weights quantized so far'),
  bytes_total: z.number().int(),
  samples_done: z.number().int().optional().describe('format=static: calibration samples run so far (phase calibrating)'),
  samples_total: z.number().int().optional(),
  fraction: z.number().min(0).max(1).describe('Never decreases; 1 exactly when the job has succeeded'),
});

export const JobView = z.object({
  id: z.string(),
  kind: z.enum(JOB_KINDS).describe('model: POST /v1/jobs; weights: POST /v1/weights/jobs'),
  status: z.enum(JOB_STATUSES),
  created_at: z.string(),
  updated_at: z.string(),
  expires_at: z.string().describe('The job and its files are deleted after this (JOBS_TTL_S after it was created or finished)'),
  progress: JobProgress,
  summary: z.union([ModelSummary, WeightsSummary]).optional().describe('Once succeeded: the report summary (a weights job: the checkpoint report\'s)'),
  error: z.object({ code: z.string(), message: z.string() }).optional().describe('Once failed: why'),
  links: JobLinks,
});

export const JobCreated = z.object({ id: z.string(), status: z.literal('queued'), links: JobLinks });

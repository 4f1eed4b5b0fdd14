import { z } from 'zod';
import { Axis, Bits, Calibration, Method, Dims, DimsText, ErrorReport, FloatDtype, Granularity, GroupSize, Percentile, Scheme, SizeReport, Tensor, TensorName } from './common.js';
import { CALIBRATIONS, SCHEMES } from '../../core/calibrate.js';
import type { QuantMethod } from '../../core/methods/index.js';
import { GRANULARITIES } from '../../core/quantize.js';

/** A list given as a JSON array or as comma-separated query text. */
const listOf = <T extends z.ZodType>(item: T) =>
  z.preprocess((v) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()) : v), z.array(item).min(1).max(16));

export const AnalyzeOptions = z.object({
  bits: listOf(Bits).default([2, 4, 8, 16]),
  schemes: listOf(Scheme).default([...SCHEMES]),
  granularities: listOf(Granularity).default([...GRANULARITIES]),
  calibrations: listOf(Calibration).default([...CALIBRATIONS]),
  methods: listOf(Method)
    .default(['rtn'] as QuantMethod[])
    .describe('Methods to compare (rtn, lsq, hqq); lsq and hqq cost about 25 and up to 20 passes over the tensor each'),
  axis: Axis.optional(),
  group_size: GroupSize.default(128),
  percentile: Percentile.default(99.99),
  target_snr_db: z.coerce.number().optional().describe('Recommend the smallest row whose snr_db reaches this'),
});

export const AnalyzeJsonBody = AnalyzeOptions.extend({ tensor: Tensor }).strict();
export const AnalyzeQuery = AnalyzeOptions.extend({
  shape: DimsText.optional(),
  dtype: FloatDtype.default('float32'),
  tensor: TensorName.optional(),
}).strict();

const Row = z.object({ bits: z.number().int(), scheme: Scheme, granularity: Granularity, calibration: Calibration, method: Method, error: ErrorReport, size: SizeReport });

export const AnalyzeResponse = z.object({ shape: Dims, rows: z.array(Row), recommended: Row.nullable() });

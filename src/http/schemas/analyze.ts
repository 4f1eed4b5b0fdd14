import { z } from 'zod';
import { GPTQ_DEFAULTS } from '../../core/methods/gptq.js';
import { Axis, Bits, Calibration, Flag, TensorMethod, Dims, DimsText, ErrorReport, FloatDtype, Granularity, GroupSize, Percentile, Scheme, SizeReport, Tensor, TensorName } from './common.js';
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
  methods: listOf(TensorMethod)
    .default(['rtn'] as QuantMethod[])
    .describe(
      'Methods to compare (rtn, lsq, hqq; imatrix and gptq with an .npz body holding activations or xtx, on the per_group and per_channel rows with minmax calibration); lsq and hqq cost about 25 and up to 20 passes over the tensor each',
    ),
  gptq_damp: z.coerce.number().min(0).max(10).default(GPTQ_DEFAULTS.damp).describe('method gptq: dampening, a fraction of the mean diagonal of XᵀX'),
  gptq_block_size: z.coerce.number().int().min(1).max(4096).default(GPTQ_DEFAULTS.blockSize).describe('method gptq: columns per lazy batch update'),
  gptq_act_order: Flag.default(GPTQ_DEFAULTS.actOrder).describe('method gptq: input features in descending order of diag XᵀX, with static groups'),
  axis: Axis.optional(),
  group_size: GroupSize.default(128),
  percentile: Percentile.default(99.99),
  target_snr_db: z.coerce
    .number()
    .optional()
    .describe('Recommend the smallest row whose snr_db reaches this (its output_snr_db when calibration statistics are given)'),
});

export const AnalyzeJsonBody = AnalyzeOptions.extend({ tensor: Tensor }).strict();
export const AnalyzeQuery = AnalyzeOptions.extend({
  shape: DimsText.optional(),
  dtype: FloatDtype.default('float32'),
  tensor: TensorName.optional(),
}).strict();

const Row = z.object({
  bits: z.number().int(),
  scheme: Scheme,
  granularity: Granularity,
  calibration: Calibration,
  method: TensorMethod,
  error: ErrorReport,
  output_snr_db: z.number().nullable().optional().describe('With activations or xtx: 10·log10(tr(W·H·Wᵀ) / tr(ΔW·H·ΔWᵀ)), H = XᵀX, the layer output error on the calibration data'),
  size: SizeReport,
});

export const AnalyzeResponse = z.object({ shape: Dims, rows: z.array(Row), recommended: Row.nullable() });

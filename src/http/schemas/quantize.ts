import { z } from 'zod';
import { GPTQ_DEFAULTS } from '../../core/methods/gptq.js';
import { TensorName, TensorMethod, Axis, Bits, Calibration, Dims, DimsText, ErrorReport, Flag, FloatDtype, GivenParam, Granularity, GroupSize, IntDtype, ParamValue, Percentile, Scheme, SizeReport, Tensor } from './common.js';

/** Most bins an error histogram may have (its counts are JSON numbers). */
export const MAX_HISTOGRAM_BINS = 4096;

export const QuantizeOptions = z.object({
  bits: Bits.default(8),
  scheme: Scheme.default('symmetric'),
  granularity: Granularity.default('per_tensor'),
  axis: Axis.optional(),
  group_size: GroupSize.default(128),
  calibration: Calibration.default('minmax'),
  percentile: Percentile.default(99.99),
  method: TensorMethod.default('rtn'),
  compare_methods: Flag.default(false).describe('Also report the SNR every method reaches with these options (methods: {rtn, lsq, hqq}, and imatrix, gptq when calibration statistics are given)'),
  gptq_damp: z.coerce.number().min(0).max(10).default(GPTQ_DEFAULTS.damp).describe("method=gptq: dampening added to XᵀX's diagonal, as a fraction of its mean"),
  gptq_block_size: z.coerce.number().int().min(1).max(4096).default(GPTQ_DEFAULTS.blockSize).describe('method=gptq: columns per lazy batch update'),
  gptq_act_order: Flag.default(GPTQ_DEFAULTS.actOrder).describe('method=gptq: input features in descending order of diag XᵀX, with static groups'),
  include_values: Flag.default(false).describe('Also list the quantized integers as a flat JSON array'),
  scale: GivenParam.optional().describe('Given scale(s): no calibration, ONNX QuantizeLinear with exactly these (shape as granularity gives it)'),
  zero_point: GivenParam.optional().describe('Given zero point(s) with scale, integers in the type\'s range (default 0)'),
  histogram_bins: z.coerce
    .number()
    .int()
    .min(0)
    .max(MAX_HISTOGRAM_BINS)
    .default(0)
    .describe(`Bins of an error histogram (dequantized minus original) in the report, 1..${MAX_HISTOGRAM_BINS}; 0 leaves it out`),
});

export const DataAwareEcho = z.object({
  statistics: z.enum(['activations', 'xtx']).describe('What the .npz body held'),
  activation_rows: z.number().int().nullable().describe('Rows of activations (null for xtx)'),
  output_snr_db: z.number().nullable().describe('10·log10(tr(W·H·Wᵀ) / tr(ΔW·H·ΔWᵀ)), H = XᵀX: the layer output error on the calibration data'),
  rtn_output_snr_db: z.number().nullable().describe('The same for round to nearest with these options'),
  damp: z.number().nullable().describe('method=gptq: the dampening the factorization used (larger than gptq_damp after a retry)'),
});

export const ErrorHistogram = z.object({
  bins: z.number().int(),
  min: z.number().describe('Smallest error (dequantized minus original)'),
  max: z.number().describe('Largest error'),
  counts: z.array(z.number().int()).describe('counts[i]: errors in [min + i·w, min + (i+1)·w), w = (max - min) / bins; the last bin includes max'),
});

export const QuantizeJsonBody = QuantizeOptions.extend({ tensor: Tensor }).strict();

/** Options in the query string, plus shape and dtype for raw bodies. */
export const BinaryQuery = QuantizeOptions.extend({
  shape: DimsText.optional().describe('Required for application/octet-stream: comma-separated dims, e.g. 256,512'),
  dtype: FloatDtype.default('float32').describe('Element type of a raw body'),
  tensor: TensorName.optional(),
}).strict();

export const CalibrationEcho = z.object({
  method: z.union([Calibration, z.literal('given')]).describe('given: the scale and zero point were sent, not calibrated'),
  percentile: z.number().nullable(),
});

export const QuantizeResponse = z.object({
  shape: Dims,
  bits: z.number().int(),
  scheme: Scheme,
  granularity: Granularity,
  axis: z.number().int().nullable(),
  group_size: z.number().int().nullable(),
  calibration: CalibrationEcho,
  method: TensorMethod,
  methods: z.record(z.string(), z.number().nullable()).optional().describe('With compare_methods: the snr_db of each method, these options otherwise'),
  q_min: z.number().int(),
  q_max: z.number().int(),
  quantized: z.object({
    dtype: IntDtype,
    encoding: z.literal('base64'),
    data: z.string().describe('Packed integers, LSB first; 16-bit little-endian'),
    values: z.array(z.number().int()).optional(),
  }),
  scale: ParamValue,
  zero_point: ParamValue,
  error: ErrorReport,
  data_aware: DataAwareEcho.optional().describe('method=imatrix|gptq: the calibration statistics and the output error they measure'),
  error_histogram: ErrorHistogram.optional().describe('With histogram_bins > 0'),
  size: SizeReport,
});

export const DequantizeBody = QuantizeResponse.extend({
  bits: z.number().int().min(2).max(16).optional().describe('Default: the full width of quantized.dtype'),
  scheme: Scheme.optional().describe('Default: symmetric for int types, asymmetric for uint'),
  granularity: Granularity.default('per_tensor'),
  axis: z.number().int().nullable().optional(),
  group_size: z.number().int().min(1).nullable().optional().describe('per_group block length (ONNX block_size)'),
  quantized: z.object({
    dtype: IntDtype,
    encoding: z.literal('base64').optional(),
    data: z.string().optional().describe('Packed integers as /v1/quantize returns them'),
    values: z.array(z.number()).optional().describe('Or the integers, flat in C order'),
  }),
  scale: GivenParam,
  zero_point: GivenParam.optional().describe('Default 0'),
  calibration: CalibrationEcho.optional(),
  method: TensorMethod.optional(),
  data_aware: DataAwareEcho.optional(),
  q_min: z.number().int().optional(),
  q_max: z.number().int().optional(),
  error: ErrorReport.optional(),
  error_histogram: ErrorHistogram.optional(),
  size: SizeReport.optional(),
}).describe('The JSON that POST /v1/quantize returned, as is; or integers with their scale and zero point (ONNX DequantizeLinear)');

/** Options for an .npz dequantize body (they override its report.json). */
export const DequantizeQuery = z
  .object({
    bits: Bits.optional(),
    scheme: Scheme.optional(),
    granularity: Granularity.optional(),
    axis: Axis.optional(),
    group_size: GroupSize.optional(),
  })
  .strict();

export const DequantizeResponse = z.object({
  shape: Dims,
  dtype: z.literal('float32'),
  data: z.string().describe('Base64 of little-endian float32 values'),
});

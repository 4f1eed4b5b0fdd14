import { z } from 'zod';
import { Axis, Bits, Calibration, Dims, DimsText, ErrorReport, Flag, FloatDtype, GivenParam, Granularity, GroupSize, IntDtype, ParamValue, Percentile, Scheme, SizeReport, Tensor } from './common.js';

export const QuantizeOptions = z.object({
  bits: Bits.default(8),
  scheme: Scheme.default('symmetric'),
  granularity: Granularity.default('per_tensor'),
  axis: Axis.optional(),
  group_size: GroupSize.default(128),
  calibration: Calibration.default('minmax'),
  percentile: Percentile.default(99.99),
  include_values: Flag.default(false).describe('Also list the quantized integers as a flat JSON array'),
  scale: GivenParam.optional().describe('Given scale(s): no calibration, ONNX QuantizeLinear with exactly these (shape as granularity gives it)'),
  zero_point: GivenParam.optional().describe('Given zero point(s) with scale, integers in the type\'s range (default 0)'),
});

export const QuantizeJsonBody = QuantizeOptions.extend({ tensor: Tensor }).strict();

/** Options in the query string, plus shape and dtype for raw bodies. */
export const BinaryQuery = QuantizeOptions.extend({
  shape: DimsText.optional().describe('Required for application/octet-stream: comma-separated dims, e.g. 256,512'),
  dtype: FloatDtype.default('float32').describe('Element type of a raw body'),
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
  q_min: z.number().int().optional(),
  q_max: z.number().int().optional(),
  error: ErrorReport.optional(),
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

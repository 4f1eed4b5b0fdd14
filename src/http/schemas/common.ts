import { z } from 'zod';
import { CALIBRATIONS, SCHEMES } from '../../core/calibrate.js';
import { FLOAT_DTYPES, INT_DTYPES, MAX_BITS, MIN_BITS } from '../../core/dtypes.js';
import { GRANULARITIES } from '../../core/quantize.js';
import { METHODS } from '../../core/methods/index.js';
import { TENSOR_DATA_METHODS } from '../../core/methods/data-aware.js';

// Options arrive as JSON fields or as query-string text; numbers and booleans are coerced
// from text so both spellings share one schema.

export const Bits = z.coerce.number().int().min(MIN_BITS).max(MAX_BITS).describe('Bit width, 2..16');
export const Scheme = z.enum(SCHEMES);
export const Granularity = z.enum(GRANULARITIES);
export const Calibration = z.enum(CALIBRATIONS);
export const Method = z.enum(METHODS).describe('How each group\'s scale and zero point are fitted to its calibrated range: rtn (round to nearest), lsq (least-squares refit), hqq (half-quadratic)');
/** The tensor API's methods: the data-free ones, and those that need calibration statistics in an .npz body. */
export const TensorMethod = z
  .enum([...METHODS, ...TENSOR_DATA_METHODS])
  .describe(
    "How each group's scale and zero point are fitted: rtn (round to nearest), lsq (least-squares refit), hqq (half-quadratic); with calibration statistics (an .npz body with activations or xtx): imatrix (lsq weighted by diag XᵀX), gptq (Hessian-based rounding of the integers)",
  );
export const FloatDtype = z.enum(FLOAT_DTYPES);
export const IntDtype = z.enum(INT_DTYPES);
export const Axis = z.coerce.number().int().describe('Channel axis (per_channel, default 0) or grouped axis (per_group, default -1); negative counts from the end');
export const GroupSize = z.coerce.number().int().min(1).describe('per_group block length along axis');
export const Percentile = z.coerce
  .number()
  .gt(0)
  .max(100)
  .describe('Percentile for calibration=percentile, in (0, 100]');
export const Flag = z
  .union([z.boolean(), z.enum(['true', 'false', '1', '0'])])
  .transform((v) => v === true || v === 'true' || v === '1');

/** ?tensor= for an application/x-safetensors body. */
export const TensorName = z.string().min(1).max(1024).describe('With application/x-safetensors: the tensor to read (optional when the file holds one)');

export const Dims = z.array(z.number().int().min(0)).max(32);

/** "256,512" in a query string → [256, 512]. */
export const DimsText = z
  .string()
  .regex(/^\s*\d+(\s*,\s*\d+)*\s*$|^$/, 'shape must be comma-separated non-negative integers, e.g. 256,512')
  .transform((s) => (s.trim() === '' ? [] : s.split(',').map((d) => Number(d))));

export const Tensor = z
  .object({
    data: z.array(z.unknown()).optional().describe('Values, flat (give shape unless 1-D) or nested arrays (shape inferred)'),
    shape: Dims.optional().describe('Dimensions; required with b64 and with flat data of rank ≠ 1'),
    b64: z.string().optional().describe('Base64 of little-endian values of dtype'),
    dtype: FloatDtype.optional().describe('dtype of b64 (default float32)'),
  })
  .strict()
  .superRefine((t, ctx) => {
    if ((t.data === undefined) === (t.b64 === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'give exactly one of data (numbers) or b64 (base64 bytes with shape and dtype)' });
    }
    if (t.b64 !== undefined && t.shape === undefined) ctx.addIssue({ code: 'custom', path: ['shape'], message: 'shape is required with b64' });
    if (t.data !== undefined && t.dtype !== undefined) ctx.addIssue({ code: 'custom', path: ['dtype'], message: 'dtype applies only to b64 input' });
  })
  .describe('A float tensor: {data, shape?} or {b64, dtype, shape}');

export type TensorBody = z.infer<typeof Tensor>;

export const ErrorReply = z
  .object({
    statusCode: z.number().int(),
    error: z.string(),
    code: z.string(),
    message: z.string(),
  })
  .describe('Every error: status, reason phrase, a stable code and a message naming the field, index or limit');

export const ErrorReport = z.object({
  max_error: z.number(),
  mean_error: z.number(),
  mse: z.number(),
  snr_db: z.number().nullable().describe('null when the tensor is all zeros'),
  clipped: z.number().int(),
  clipped_fraction: z.number(),
  non_finite: z.number().int().optional().describe('With given scales: NaN and ±Infinity inputs (quantized as QuantizeLinear does), left out of the other figures'),
});

export const SizeReport = z.object({
  original_bytes: z.number().int().describe('As float32'),
  quantized_bytes: z.number().int().describe('Packed data + 4 bytes per scale + packed zero points when asymmetric'),
  compression_ratio: z.number(),
});

/** A number per tensor, nested arrays in the parameter shape otherwise. */
export const ParamValue = z.union([z.number(), z.array(z.unknown())]);

/**
 * A given scale or zero point: a number (per tensor), nested arrays in the parameter shape,
 * or in a query string comma-separated values in C order.
 */
export const GivenParam = z
  .union([z.number(), z.array(z.unknown()), z.string()])
  .describe('A number (per_tensor), nested arrays in the parameter shape, or in a query string comma-separated values in C order');

import { z } from 'zod';
import { Calibration, Dims, IntDtype, ParamValue, Percentile, Scheme, Tensor } from './common.js';

export const MatmulBody = z
  .object({
    a: Tensor,
    b: Tensor,
    bits: z.coerce.number().int().min(2).max(8).default(8).describe('Bit width of both operands, 2..8'),
    scheme: Scheme.default('symmetric'),
    granularity: z.enum(['per_tensor', 'per_channel']).default('per_tensor').describe('per_channel: rows of a, columns of b'),
    calibration: Calibration.default('minmax'),
    percentile: Percentile.default(99.99),
  })
  .strict();

const Operand = z.object({ dtype: IntDtype, q_min: z.number().int(), q_max: z.number().int(), scale: ParamValue, zero_point: ParamValue });

export const MatmulResponse = z.object({
  shape: Dims,
  bits: z.number().int(),
  scheme: Scheme,
  granularity: z.enum(['per_tensor', 'per_channel']),
  result: z.object({ dtype: z.literal('float32'), encoding: z.literal('base64'), data: z.string() }),
  error: z.object({
    max_error: z.number(),
    mean_error: z.number(),
    relative_error: z.number().nullable().describe('Frobenius ||C - C_q|| / ||C||; null when C is all zeros and C_q is not'),
  }),
  memory: z.object({ float32_bytes: z.number().int(), quantized_bytes: z.number().int(), savings: z.number() }),
  a: Operand,
  b: Operand,
});

import { z } from 'zod';
import { WEIGHT_BITS, WEIGHT_GRANULARITIES } from '../../checkpoints/quantize-checkpoint.js';
import { Calibration, GroupSize, Percentile, Scheme } from './common.js';

// POST /v1/weights/quantize options, in the query string. Lists are comma-separated text.

const csv = (max: number) =>
  z.preprocess((v) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter((s) => s !== '') : v), z.array(z.string().min(1).max(512)).max(max));

export const WeightsOptions = z
  .object({
    bits: z.coerce
      .number()
      .pipe(z.literal(WEIGHT_BITS, { error: `must be one of ${WEIGHT_BITS.join(', ')}` }))
      .default(4)
      .describe('Weight bit width: 4 or 8 (what pack-quantized holds)'),
    scheme: Scheme.default('symmetric'),
    granularity: z.enum(WEIGHT_GRANULARITIES).default('per_group').describe('per_group (along in_features) or per_channel (one scale per output row)'),
    group_size: GroupSize.default(128),
    calibration: Calibration.default('minmax'),
    percentile: Percentile.default(99.99),
    include: csv(1000).default(['*']).describe('Comma-separated tensor names to quantize; * matches any run of characters'),
    exclude: csv(1000)
      .default(['*embed*', 'lm_head*'])
      .describe('Comma-separated tensor names to keep as they are (default: embeddings and the output head, which vLLM does not quantize); exclude= for none'),
  })
  .strict();

export const WeightsSummary = z.object({
  format: z.literal('pack-quantized'),
  bits: z.number().int(),
  scheme: z.enum(['symmetric', 'asymmetric']),
  granularity: z.string(),
  group_size: z.number().int().nullable(),
  calibration: z.string(),
  files: z.number().int().describe('Shards written (1 for a single file)'),
  tensors_quantized: z.number().int(),
  tensors_skipped: z.number().int(),
  tensors_copied: z.number().int(),
  original_bytes: z.number().int(),
  quantized_bytes: z.number().int(),
  compression_ratio: z.number(),
  weights_original_bytes: z.number().int(),
  weights_quantized_bytes: z.number().int(),
  worst_tensor: z.object({ name: z.string(), snr_db: z.number().nullable() }).nullable(),
  quantize_ms: z.number(),
  timings_ms: z.object({ decode: z.number(), quantize: z.number(), encode: z.number() }).describe('Milliseconds reading headers and decoding floats, fitting and packing, writing'),
});

export const WeightsRow = z.object({
  name: z.string(),
  module: z.string(),
  file: z.string().optional().describe('The shard that holds it (sharded checkpoints)'),
  shape: z.array(z.number().int()),
  dtype: z.string(),
  format: z.literal('pack-quantized'),
  bits: z.number().int(),
  granularity: z.string(),
  group_size: z.number().int().nullable(),
  scale_count: z.number().int(),
  scale_dtype: z.string().describe("weight_scale's dtype: the weight's own"),
  original_bytes: z.number().int(),
  quantized_bytes: z.number().int(),
  max_error: z.number(),
  mean_error: z.number(),
  mse: z.number(),
  snr_db: z.number().nullable(),
  clipped: z.number().int(),
});

export const WeightsReport = z.object({
  summary: WeightsSummary,
  tensors: z.array(WeightsRow).describe('Worst first: ascending snr_db'),
  skipped: z.array(z.object({ name: z.string(), reason: z.string(), file: z.string().optional() })),
  quantization_config: z.record(z.string(), z.unknown()).describe("The model's config.json `quantization_config` (compressed-tensors)"),
});

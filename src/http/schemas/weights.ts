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

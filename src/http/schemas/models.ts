import { z } from 'zod';
import { MODEL_BITS, MODEL_FORMATS, MODEL_OP_TYPES } from '../../onnx/weights/options.js';
import { Calibration, Flag, Granularity, GroupSize, Method, Percentile, Scheme } from './common.js';

// Model quantization options: query-string parameters, or multipart fields of the same
// names. Lists are comma-separated text.

const csv = <T extends z.ZodType>(item: T, max: number) =>
  z.preprocess((v) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter((s) => s !== '') : v), z.array(item).max(max));

export const ModelOptions = z
  .object({
    bits: z.coerce
      .number()
      .pipe(z.literal(MODEL_BITS, { error: `must be one of ${MODEL_BITS.join(', ')}` }))
      .default(8)
      .describe('Weight bit width: 8, 4, 3 or 2 (3-bit values are stored in int4 QDQ: onnxruntime 1.30 MatMulNBits refuses bits=3); nf4 and fp8 formats have their own'),
    scheme: Scheme.default('symmetric'),
    granularity: Granularity.optional().describe('Default per_channel for 8-bit, per_group for 4- and 2-bit'),
    group_size: GroupSize.optional().describe('Block length along the reduction axis for per_group; default 32 (4/2-bit), 128 (8-bit)'),
    calibration: Calibration.default('minmax'),
    percentile: Percentile.default(99.99),
    method: Method.default('rtn'),
    format: z
      .enum(MODEL_FORMATS)
      .default('auto')
      .describe(
        'auto, qdq (DequantizeLinear), matmulnbits (com.microsoft MatMulNBits), dynamic (int8 activations at run time), nf4 (com.microsoft MatMulBnb4), fp8e4m3 / fp8e5m2 (float8 DequantizeLinear, opset ≥ 19)',
      ),
    op_types: csv(z.enum(MODEL_OP_TYPES), MODEL_OP_TYPES.length)
      .default([...MODEL_OP_TYPES])
      .describe('Comma-separated ops whose weights are quantized'),
    exclude: csv(z.string().min(1).max(512), 1000)
      .default([])
      .describe('Comma-separated node or initializer names to keep in float; * matches any run of characters'),
    min_elements: z.coerce.number().int().min(0).default(1024).describe('Weights with fewer elements stay float'),
    validate: Flag.default(true).describe('Run both models in onnxruntime and compare their outputs'),
  })
  .strict();

export type ModelOptionsInput = z.input<typeof ModelOptions>;

const Tensor = z.object({
  name: z.string(),
  node: z.string(),
  nodes: z.array(z.string()),
  op_type: z.string(),
  shape: z.array(z.number().int()),
  format: z.enum(MODEL_FORMATS).exclude(['auto']),
  bits: z.number().int(),
  granularity: Granularity,
  axis: z.number().int().nullable(),
  group_size: z.number().int().nullable(),
  scale_count: z.number().int(),
  original_bytes: z.number().int(),
  quantized_bytes: z.number().int(),
  max_error: z.number(),
  mean_error: z.number(),
  mse: z.number(),
  snr_db: z.number().nullable(),
  clipped: z.number().int(),
  int8_snr_db: z.number().nullable().optional().describe('FP8 rows: the snr_db int8 reaches on the same weight'),
  note: z.string().optional().describe('Why the form differs from what was asked, or what it costs at run time'),
});

const Output = z.object({
  name: z.string(),
  shape: z.array(z.number().int()),
  max_abs_error: z.number(),
  mean_abs_error: z.number(),
  cosine_similarity: z.number(),
  snr_db: z.number().nullable(),
});

const Run = z.object({ session_options: z.string(), outputs: z.array(Output) });

export const Validation = z.union([
  z.object({
    status: z.literal('ok'),
    seed: z.number().int(),
    inputs: z.array(z.object({ name: z.string(), dtype: z.string(), shape: z.array(z.number().int()), source: z.enum(['random', 'zeros', 'user']) })),
    weights_only: Run.describe('onnxruntime with qdq_matmulnbits_accuracy_level=0: the error the weights alone cause'),
    default_optimization: Run.describe("onnxruntime's defaults, as deployed (may also quantize activations)"),
    elapsed_ms: z.number(),
  }),
  z.object({ status: z.enum(['skipped', 'error']), reason: z.string() }),
]);

export const ModelSummary = z.object({
  bits: z.number().int(),
  scheme: Scheme,
  granularity: Granularity,
  group_size: z.number().int().nullable(),
  calibration: Calibration,
  method: Method,
  format: z.enum(MODEL_FORMATS),
  formats: z.record(z.string(), z.number().int()),
  opset: z.number().int().nullable(),
  opset_imports_added: z.array(z.object({ domain: z.string(), version: z.number().int() })),
  tensors_quantized: z.number().int(),
  tensors_skipped: z.number().int(),
  original_bytes: z.number().int(),
  quantized_bytes: z.number().int(),
  compression_ratio: z.number(),
  weights_original_bytes: z.number().int(),
  weights_quantized_bytes: z.number().int(),
  worst_tensor: z.object({ name: z.string(), snr_db: z.number().nullable() }).nullable(),
  quantize_ms: z.number(),
  timings_ms: z
    .object({ decode: z.number(), quantize: z.number(), encode: z.number(), validation: z.number() })
    .describe('Milliseconds per stage: decode and upload checks, quantization, writing the model, onnxruntime validation (both runs)'),
});

export const ModelReport = z.object({
  summary: ModelSummary,
  tensors: z.array(Tensor).describe('Worst first: ascending snr_db'),
  skipped: z.array(z.object({ name: z.string(), reason: z.string() })),
  validation: Validation,
});

export const ModelJsonResponse = ModelReport.extend({
  model: z.object({ encoding: z.literal('base64'), filename: z.string(), data: z.string() }),
});

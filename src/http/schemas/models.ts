import { z } from 'zod';
import { GPTQ_DEFAULTS, INITIALIZER_INPUTS, MODEL_BITS, MODEL_FORMATS, MODEL_METHODS, MODEL_OP_TYPES } from '../../onnx/weights/options.js';
import { DataAwareReport } from './data-aware-report.js';
import { ACTIVATION_CALIBRATIONS } from '../../onnx/activations/calibrate.js';
import { ACTIVATION_TYPES } from '../../onnx/activations/qparams.js';
import { StaticReport } from './static-report.js';
import { LSQ_WEIGHTINGS } from '../../core/methods/lsq-weights.js';

/** What `format` takes: the weight formats, and `static` (weights and activations, calibrated). */
export const REQUEST_FORMATS = [...MODEL_FORMATS, 'static'] as const;
import { Calibration, Flag, Granularity, GroupSize, Percentile, Scheme } from './common.js';

/** The model path's methods: the tensor API's data-free ones and the data-aware ones (they need the `calibration` part). */
export const ModelMethod = z
  .enum(MODEL_METHODS)
  .describe(
    "How each weight's scale and zero point (and, for gptq, its integers) are chosen: rtn (round to nearest), lsq (least-squares refit), hqq (half-quadratic); with the `calibration` part: imatrix (importance-weighted least squares), gptq (Hessian-based rounding), awq (activation-aware scaling)",
  );

// Model quantization options: query-string parameters, or multipart fields of the same
// names. Lists are comma-separated text.

const csv = <T extends z.ZodType>(item: T, max: number) =>
  z.preprocess((v) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter((s) => s !== '') : v), z.array(item).max(max));

/** "sequence:512,height:640" → {sequence: 512, height: 640} (already parsed when the route's schema ran first). */
const DimValues = z.preprocess((v, ctx) => {
  if (typeof v !== 'string') return v;
  const out: Record<string, number> = Object.create(null) as Record<string, number>;
  for (const part of v.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    const m = /^(.+?)\s*:\s*(\d+)$/.exec(part);
    const value = m ? Number(m[2]) : NaN;
    if (!m || !Number.isSafeInteger(value) || value < 1) {
      ctx.addIssue({ code: 'custom', message: `'${part.slice(0, 60)}' is not name:size with a size ≥ 1 (e.g. dims=sequence:512,height:640)` });
      return z.NEVER;
    }
    if (Object.hasOwn(out, m[1]!)) {
      ctx.addIssue({ code: 'custom', message: `'${m[1]!.slice(0, 60)}' is given twice` });
      return z.NEVER;
    }
    out[m[1]!] = value;
  }
  return out;
}, z.record(z.string().max(256), z.number().int().min(1)));

export const ModelOptions = z
  .object({
    bits: z.coerce
      .number()
      .pipe(z.literal(MODEL_BITS, { error: `must be one of ${MODEL_BITS.join(', ')}` }))
      .default(8)
      .describe('Weight bit width: 8, 4, 3 or 2 (3-bit values are stored in int4 QDQ: onnxruntime 1.30 MatMulNBits refuses bits=3); nf4 and fp8 formats have their own'),
    scheme: Scheme.default('symmetric'),
    granularity: Granularity.optional().describe('Default per_channel for 8-bit, per_group for 4- and 2-bit; per_group gives a weight whose blocked axis has length 1 (a depthwise Conv) one scale per output channel instead, int8 below 8 bits, and its row says so'),
    group_size: GroupSize.optional().describe('Block length along the reduction axis for per_group; default 32 (4/2-bit), 128 (8-bit)'),
    calibration: Calibration.default('minmax'),
    percentile: Percentile.default(99.99),
    method: ModelMethod.default('rtn'),
    gptq_damp: z.coerce.number().min(0).max(10).default(GPTQ_DEFAULTS.damp).describe("method=gptq: dampening added to the Hessian's diagonal, as a fraction of its mean"),
    gptq_block_size: z.coerce.number().int().min(1).max(4096).default(GPTQ_DEFAULTS.blockSize).describe('method=gptq: columns per lazy batch update'),
    gptq_act_order: Flag.default(GPTQ_DEFAULTS.actOrder).describe('method=gptq: process the input features in descending order of their activation energy (diag XᵀX), with static groups'),
    lsq_weights: z
      .enum(LSQ_WEIGHTINGS)
      .default('mse')
      .describe("method=lsq: what each element's squared error is weighted by: mse (all alike: the best SNR per weight) or magnitude (llama.cpp Q4_K's av_x + |x|: less error on the large weights, lower perplexity on our language models, slower: it runs outside the SIMD kernel)"),
    awq_clip: Flag.default(true).describe("method=awq: after the scale search, llm-awq's clip search (max |w| per output channel and group shrunk by up to 45% where that lowers the output error; not for query/key projections; calibration=minmax only)"),
    format: z
      .enum(REQUEST_FORMATS)
      .default('auto')
      .describe(
        'auto, qdq (DequantizeLinear), matmulnbits (com.microsoft MatMulNBits), dynamic (int8 activations at run time), nf4 (com.microsoft MatMulBnb4), fp8e4m3 / fp8e5m2 (float8 DequantizeLinear, opset ≥ 19) or static (int8 weights and activations calibrated on your data)',
      ),
    op_types: csv(z.enum(MODEL_OP_TYPES), MODEL_OP_TYPES.length)
      .default([...MODEL_OP_TYPES])
      .describe('Comma-separated ops whose weights are quantized'),
    exclude: csv(z.string().min(1).max(512), 1000)
      .default([])
      .describe('Comma-separated node or initializer names to keep in float; * matches any run of characters'),
    min_elements: z.coerce.number().int().min(0).default(1024).describe('Weights with fewer elements stay float'),
    initializer_inputs: z
      .enum(INITIALIZER_INPUTS)
      .default('quantize')
      .describe(
        "Initializers also listed as graph inputs (IR ≥ 4, e.g. PyTorch's keep_initializers_as_inputs=True): quantize them and remove them from the model's inputs (default), or keep them float and overridable (weight-only formats; format=static refuses keep)",
      ),
    validate: Flag.default(true).describe('Run both models in onnxruntime and compare their outputs'),
    measure_latency: Flag.default(true).describe('Time the original and the quantized model in onnxruntime (median of repeated runs, bounded) and report the speedup'),
    activation_type: z.enum(ACTIVATION_TYPES).default('uint8').describe('format=static: activation integers (uint8 asymmetric is what x86 kernels fuse; int16 favours accuracy)'),
    activation_calibration: z.enum(ACTIVATION_CALIBRATIONS).default('minmax').describe('format=static: how activation ranges are chosen from the calibration samples'),
    activation_percentile: z.coerce.number().gt(0).max(100).default(99.999).describe('format=static, activation_calibration=percentile: the share of values kept'),
    calibration_data: z.literal('random').optional().describe('format=static or a data-aware method without a `calibration` part: random opts into N(0, 1) calibration inputs (the report warns)'),
    calibration_samples: z.coerce.number().int().min(2).max(1024).default(32).describe('format=static or a data-aware method with calibration_data=random: how many random samples'),
    held_back: z.coerce.number().int().min(0).optional().describe('format=static or a data-aware method: calibration samples kept out of calibration to measure errors on (default a quarter of N, at most 64)'),
    target_snr_db: z.coerce.number().min(-100).max(200).optional().describe('format=static: return the worst layers to float until every output reaches this SNR on the held-back samples'),
    max_cosine_drop: z.coerce.number().min(0).max(2).optional().describe('format=static: as target_snr_db, with 1 − cosine similarity of every output at most this'),
    dims: DimValues.optional().describe(
      'Values for the symbolic dimensions of the inputs validation generates, e.g. sequence:512,height:640,width:640 (default 1 each); an alternative to an inputs .npz',
    ),
  })
  .strict();

export type ModelOptionsInput = z.input<typeof ModelOptions>;

const Tensor = z.object({
  name: z.string(),
  node: z.string(),
  nodes: z.array(z.string()),
  op_type: z.string(),
  shape: z.array(z.number().int()),
  dtype: z.string().describe("The weight's float type (float32, float16, bfloat16); the quantized graph keeps it"),
  graph: z.string().optional().describe('Set for a weight defined in a subgraph: which one'),
  format: z.enum(MODEL_FORMATS).exclude(['auto']),
  form: z.string().describe('The op that carries the weight (domain, axis, scale type) and why that one'),
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
  method: z.string().optional().describe('Data-aware methods: what fitted this weight (rtn where the method could not, with the reason in note)'),
  proxy_loss_reduction: z
    .number()
    .nullable()
    .optional()
    .describe("Data-aware methods: 1 − ‖XΔW‖²/‖XΔW_rtn‖² on the calibration activations (gptq, awq: full XᵀX; imatrix: its diagonal)"),
  note: z.string().optional().describe('Why the form differs from what was asked, or what it costs at run time'),
});

const Output = z.object({
  name: z.string(),
  shape: z.array(z.number().int()),
  max_abs_error: z.number(),
  mean_abs_error: z.number(),
  cosine_similarity: z.number(),
  snr_db: z.number().nullable(),
  constant: z.literal(true).optional().describe('Present when the output is constant (or all zero) on both models: its figures say nothing'),
});

const Run = z.object({ session_options: z.string(), outputs: z.array(Output) });

const Compared = {
  seed: z.number().int(),
  inputs: z.array(z.object({ name: z.string(), dtype: z.string(), shape: z.array(z.number().int()), source: z.enum(['random', 'zeros', 'user']) })),
  dims: z.record(z.string(), z.number().int()).describe('The value each symbolic dimension of the generated inputs took'),
  weights_only: Run.describe('onnxruntime with qdq_matmulnbits_accuracy_level=0: the error the weights alone cause'),
  default_optimization: Run.describe("onnxruntime's defaults, as deployed (may also quantize activations)"),
  elapsed_ms: z.number(),
};

export const Validation = z.union([
  z.object({ status: z.literal('ok'), ...Compared }),
  z.object({
    status: z.literal('inconclusive').describe('Both models ran, but every output is constant or all zero on both: the figures say nothing about the weights'),
    reason: z.string(),
    what_to_send: z.string().describe('dims or inputs that would make the comparison mean something'),
    ...Compared,
  }),
  z.object({ status: z.literal('skipped'), reason: z.string(), what_to_send: z.string().optional() }),
  z.object({ status: z.literal('error'), reason: z.string() }),
]);

const Latency = z.union([
  z.object({
    status: z.literal('ok'),
    session_options: z.string(),
    rows: z.array(
      z.object({
        intra_op_threads: z.number().int().describe("1, or 0 for onnxruntime's default"),
        original_ms: z.number(),
        quantized_ms: z.number(),
        speedup: z.number().describe('original_ms / quantized_ms: above 1 the quantized model is faster'),
        original_runs: z.number().int(),
        quantized_runs: z.number().int(),
      }),
    ),
    elapsed_ms: z.number(),
  }),
  z.object({ status: z.literal('skipped'), reason: z.string() }),
]);

export const ModelSummary = z.object({
  bits: z.number().int(),
  scheme: Scheme,
  granularity: Granularity,
  group_size: z.number().int().nullable(),
  calibration: Calibration,
  method: ModelMethod,
  format: z.enum(REQUEST_FORMATS),
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
  weights_float_bytes: z.number().int().describe('Bytes of every float initializer and Constant, in all graphs'),
  weights_quantized_fraction: z.number().describe('weights_original_bytes / weights_float_bytes: the share of float weight bytes quantized'),
  worst_tensor: z.object({ name: z.string(), snr_db: z.number().nullable() }).nullable(),
  quantize_ms: z.number(),
  timings_ms: z
    .object({ decode: z.number(), calibrate: z.number(), quantize: z.number(), encode: z.number(), validation: z.number() })
    .describe('Milliseconds per stage: decode and upload checks, activation calibration runs (format=static; 0 otherwise), quantization, writing the model, onnxruntime validation (both runs)'),
});

export const ModelReport = z.object({
  summary: ModelSummary,
  tensors: z.array(Tensor).describe('Worst first: ascending snr_db'),
  skipped: z.array(z.object({ name: z.string(), reason: z.string() })),
  validation: Validation,
  latency: Latency.optional().describe('Both models timed in onnxruntime with the same options and inputs (measure_latency=true)'),
  static: StaticReport.optional().describe('format=static: calibration, activation parameters and errors, fallback, fused node units'),
  data_aware: DataAwareReport.optional().describe('method=imatrix|gptq|awq: the calibration statistics and the quantized model against the float one on held-back samples'),
});

export const ModelJsonResponse = ModelReport.extend({
  model: z.object({ encoding: z.literal('base64'), filename: z.string(), data: z.string() }),
});

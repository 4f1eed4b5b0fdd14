import { z } from 'zod';
import { Comparison } from './comparison.js';

// The `static` section of a model report (src/onnx/activations/static-report.ts).

const n = z.number().nullable();

const Activation = z.object({
  name: z.string(),
  node: z.string().describe('The node whose rule quantized it'),
  op_type: z.string(),
  shares_with: z.string().nullable().describe('After data-movement ops: the tensor whose scale and zero point it reuses'),
  min: n.describe('The calibrated range (before it is widened to include 0)'),
  max: n,
  observed_min: n.describe('The raw extremes over the calibration samples'),
  observed_max: n,
  scale: z.number(),
  zero_point: z.number().int(),
  snr_db: n.describe('Against the float tensor on the held-back samples (Q → DQ as written)'),
  cosine_similarity: n,
});

const Output = z.object({
  name: z.string(),
  cosine_similarity: z.number().describe('Mean over held-back samples, in the model as onnxruntime optimizes it (fused kernels)'),
  min_cosine_similarity: z.number(),
  snr_db: n,
  top1_agreement: n.describe('For [batch, classes] outputs: share of rows whose argmax agrees'),
});

const Excluded = z.object({
  node: z.string(),
  op_type: z.string(),
  tensor: z.string(),
  snr_db: n,
  input_snr_db: n,
  round: z.number().int(),
  reason: z.string(),
});

const FusedOps = z.union([
  z.object({
    status: z.literal('ok'),
    fused: z.record(z.string(), z.number().int()).describe('Integer kernels in the optimized graph (QLinearConv, QLinearMatMul, QGemm, QLinearAdd...)'),
    float_compute: z.record(z.string(), z.number().int()).describe('Conv/MatMul/Gemm still running in float'),
    quantize_linear: z.number().int(),
    dequantize_linear: z.number().int(),
    nodes: z.number().int(),
  }),
  z.object({ status: z.literal('skipped'), reason: z.string() }),
]);

export const StaticReport = z.object({
  activation_type: z.string(),
  activation_calibration: z.string(),
  calibration_data: z.enum(['user', 'random']),
  calibration_samples: z.number().int(),
  held_back_samples: z.number().int(),
  warnings: z.array(z.string()),
  target: z.object({ target_snr_db: n, max_cosine_drop: n }).nullable(),
  target_met: z.boolean().nullable(),
  rounds: z.number().int(),
  excluded: z.array(Excluded).describe('Nodes the fallback returned to float, and why'),
  history: z.array(z.object({ round: z.number().int(), excluded: z.number().int(), min_output_snr_db: n, min_output_cosine: n })),
  outputs: z.array(Output).describe('Empty when the held-back measurement did not run (comparison)'),
  comparison: Comparison.describe(
    "Whether the held-back measurement ran: 'error' with the reason when onnxruntime crashed or failed in it (the quantized model is returned all the same, unmeasured: outputs empty, activation SNRs null, target_met null)",
  ),
  activations: z.array(Activation).describe('Worst first: ascending snr_db'),
  qdq_pairs: z.number().int(),
  int32_biases: z.number().int(),
  weight_scales_raised: z.number().int(),
  opset_imports_added: z.array(z.string()),
  fused_ops: FusedOps,
  timings_ms: z.object({ calibration: z.number(), quantize_and_measure: z.number() }),
});

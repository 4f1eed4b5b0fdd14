import { z } from 'zod';
import { Comparison } from './comparison.js';
import { DATA_AWARE_METHODS } from '../../onnx/weights/options.js';

// The `data_aware` section of a model report (src/onnx/activations/quantize-data-aware.ts).

const n = z.number().nullable();

const Output = z.object({
  name: z.string(),
  snr_db: n.describe('10·log10(Σ ref² / Σ (ref − q)²) over every held-back sample, quantized model with qdq_matmulnbits_accuracy_level 0 (the weights alone)'),
  cosine_similarity: z.number().describe('Mean over held-back samples'),
  min_cosine_similarity: z.number(),
  top1_agreement: n.describe('Share of rows along the last axis (classes, vocabulary) whose argmax agrees; null for outputs of rank < 2'),
});

const AwqRow = z.object({
  activation: z.string().describe('The activation whose mean |x| per channel gives s'),
  weights: z.array(z.string()).describe('The weights reading it: they share one s'),
  alpha: z.number().describe('s = mean|x|^alpha, chosen on a grid of 20 in [0, 1) by the output error on the calibration activations; for grouped Conv weights the mean of conv_group_alphas'),
  conv_group_alphas: z.array(z.number()).optional().describe('Grouped Conv (1 < group < C): the alpha each conv group chose, with s normalized per group (each conv group is its own layer)'),
  proxy_loss_reduction: n.describe('1 − ‖XΔW‖² after the scale and clip searches over alpha = 0 without clipping (rtn), summed over the weights'),
  scale_proxy_loss_reduction: n.describe('The same for the scale search alone (before clipping)'),
  clip: z
    .array(
      z.object({
        weight: z.string(),
        clipped: z.boolean().describe('Whether the clip search ran on this weight (llm-awq auto_clip: max |w| per output channel and group shrunk by up to 45%)'),
        groups_shrunk: z.number().optional().describe('Share of (output channel, group) pairs whose max |w| was shrunk'),
        mean_shrink: z.number().optional().describe('Mean shrink of max |w| over the groups'),
        reason: z.string().optional().describe('Why it did not run (a query/key projection, awq_clip=false, calibration other than minmax)'),
      }),
    )
    .describe('The clip search, per weight'),
  scales: z.string().describe('Where 1/s went: folded into the producing op, or an inserted Mul'),
});

export const DataAwareReport = z.object({
  method: z.enum(DATA_AWARE_METHODS),
  source: z.enum(['user', 'random']),
  warning: z.string().optional(),
  calibration_samples: z.number().int(),
  held_back_samples: z.number().int(),
  measured_on_calibration: z.boolean().describe('True when no sample could be held back (N = 1): the outputs were measured on the calibration sample'),
  statistics: z.object({
    kind: z.enum(['diag', 'full']).describe('diag: diag(XᵀX) per input (imatrix); full: the K×K XᵀX per activation (gptq, awq)'),
    activations: z.number().int(),
    passes: z.number().int().describe('Runs over the calibration samples: one per batch of activations whose K×K sums fit hessian_max_bytes'),
    peak_hessian_bytes: z.number().int(),
    hessian_max_bytes: z.number().int(),
  }),
  gptq: z.object({ damp: z.number(), block_size: z.number().int(), act_order: z.boolean() }).optional(),
  awq: z.array(AwqRow).optional(),
  outputs: z.array(Output).describe('The quantized model against the float one on the held-back samples; empty when the comparison did not run'),
  comparison: Comparison.describe(
    "Whether the held-back comparison ran: 'error' with the reason when onnxruntime crashed or failed in it (the quantized model is returned all the same, as validation does)",
  ),
  calibration_ms: z.number(),
  quantize_ms: z.number(),
  measure_ms: z.number(),
});

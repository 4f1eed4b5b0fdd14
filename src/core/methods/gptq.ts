import { gptqReference } from '../reference/gptq.js';
import type { GptqOptions, GptqResult } from './gptq-steps.js';

export { GPTQ_DAMP_RETRIES, GPTQ_DEFAULTS, type GptqOptions, type GptqResult } from './gptq-steps.js';

/**
 * GPTQ of one linear layer. W is [rows = output channels, cols = input features] row-major;
 * xtx is cols×cols = Σ xᵀx over calibration rows (not normalized: GPTQ's result does not
 * depend on H's scale, and the dampening is relative to its mean diagonal).
 */
export function gptq(weight: Float32Array, rows: number, cols: number, xtx: Float64Array, opts: GptqOptions): GptqResult {
  return gptqReference(weight, rows, cols, xtx, opts);
}

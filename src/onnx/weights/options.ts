import type { CalibrationMethod, Scheme } from '../../core/calibrate.js';
import type { Granularity } from '../../core/quantize.js';
import { METHODS, type QuantMethod } from '../../core/methods/index.js';
import type { LsqWeighting } from '../../core/methods/lsq-weights.js';

export const MODEL_FORMATS = ['auto', 'qdq', 'matmulnbits', 'dynamic', 'nf4', 'fp8e4m3', 'fp8e5m2'] as const;
export type ModelFormat = (typeof MODEL_FORMATS)[number];
/** What a weight ends up as (auto resolves to one of these per weight). */
export type WeightFormat = Exclude<ModelFormat, 'auto'>;

/**
 * Ops whose weight inputs are quantized: MatMul/Gemm B, Conv/ConvTranspose W, Gather data
 * (embeddings), LSTM/GRU/RNN W and R, and Add of a constant of rank ≥ 2 (learned position
 * embeddings added to activations; biases are rank 1).
 */
export const MODEL_OP_TYPES = ['MatMul', 'Gemm', 'Conv', 'ConvTranspose', 'Gather', 'LSTM', 'GRU', 'RNN', 'Add'] as const;
export type ModelOpType = (typeof MODEL_OP_TYPES)[number];

/**
 * The model path's methods: the tensor API's data-free ones, and those that need the
 * calibration part (the activations of each weight's input, gathered in onnxruntime).
 */
export const DATA_AWARE_METHODS = ['imatrix', 'gptq', 'awq'] as const;
export type DataAwareMethod = (typeof DATA_AWARE_METHODS)[number];
export const MODEL_METHODS = [...METHODS, ...DATA_AWARE_METHODS] as const;
export type ModelMethod = QuantMethod | DataAwareMethod;
export function isDataAware(m: ModelMethod | undefined): m is DataAwareMethod {
  return (DATA_AWARE_METHODS as readonly string[]).includes(m ?? '');
}

/** GPTQ's defaults (the and IST-DASLab's): dampening 1% of the mean diagonal, lazy blocks of 128 columns, no reordering. */
export const GPTQ_DEFAULTS = { damp: 0.01, blockSize: 128, actOrder: false } as const;

export interface GptqModelOptions {
  damp: number;
  blockSize: number;
  actOrder: boolean;
}

export const MODEL_BITS = [2, 3, 4, 8] as const;
export type ModelBits = (typeof MODEL_BITS)[number];

/** Formats whose values are not integers on a uniform grid: the bit width is theirs, and method must be rtn. */
export const CODEBOOK_FORMATS = ['nf4', 'fp8e4m3', 'fp8e5m2'] as const;
export function isCodebookFormat(f: ModelFormat): f is (typeof CODEBOOK_FORMATS)[number] {
  return (CODEBOOK_FORMATS as readonly string[]).includes(f);
}

/**
 * What an initializer that is also a graph input is (IR ≥ 4; PyTorch's
 * keep_initializers_as_inputs=True lists every weight so): quantize treats it as the weight
 * it is and takes it out of the model's inputs; keep leaves it float and an input, for
 * callers that really override weights at run time.
 */
export const INITIALIZER_INPUTS = ['quantize', 'keep'] as const;
export type InitializerInputs = (typeof INITIALIZER_INPUTS)[number];

/** The row note of a weight that was also a graph input. */
export const INITIALIZER_INPUT_NOTE = "was also a graph input (keep_initializers_as_inputs export): removed from the model's inputs";

/** com.microsoft MatMulNBits accepts these block sizes only (MatMulBnb4 the same). */
export const MATMULNBITS_BLOCK_SIZES = [16, 32, 64, 128, 256] as const;

export interface ModelQuantOptions {
  bits: ModelBits;
  scheme: Scheme;
  granularity: Granularity;
  groupSize: number;
  calibration: CalibrationMethod;
  percentile: number;
  /** How each group's scale and zero point are fitted (core/methods), or a data-aware method (needs calibration samples). */
  method: ModelMethod;
  gptq: GptqModelOptions;
  /** method=awq: run llm-awq's clip search after the scale search (default true). */
  awqClip: boolean;
  /** method=lsq: what each group's squared error weighs its elements by (core/methods/lsq-weights.ts); mse when absent. */
  lsqWeights?: LsqWeighting | undefined;
  format: ModelFormat;
  opTypes: ModelOpType[];
  /** Node or initializer names; `*` matches any run of characters. */
  exclude: string[];
  /** Weights with fewer elements stay float. */
  minElements: number;
  /** Initializers that are also graph inputs (IR ≥ 4): quantized and removed from the inputs, or kept (left float). */
  initializerInputs: InitializerInputs;
}

/**
 * Defaults that depend on the bit width: 8-bit weights are quantized per output channel,
 * 4- and 2-bit ones in blocks of 32 along the reduction axis (per channel loses too much
 * at 4 bits, and both ONNX 4-bit forms are blocked).
 */
export function defaultsFor(bits: ModelBits): { granularity: Granularity; groupSize: number } {
  return bits === 8 ? { granularity: 'per_channel', groupSize: 128 } : { granularity: 'per_group', groupSize: 32 };
}

export function modelQuantOptions(partial: Partial<ModelQuantOptions> = {}): ModelQuantOptions {
  const format = partial.format ?? 'auto';
  // nf4 stores 4-bit codes in blocks (64 by default, bitsandbytes' and onnxruntime's tool's
  // choice); fp8 is 8 bits: their own width, whatever bits says.
  const bits = format === 'nf4' ? 4 : format === 'fp8e4m3' || format === 'fp8e5m2' ? 8 : (partial.bits ?? 8);
  const d = format === 'nf4' ? { granularity: 'per_group' as const, groupSize: 64 } : defaultsFor(bits);
  return {
    bits,
    scheme: partial.scheme ?? 'symmetric',
    granularity: partial.granularity ?? d.granularity,
    groupSize: partial.groupSize ?? d.groupSize,
    calibration: partial.calibration ?? 'minmax',
    percentile: partial.percentile ?? 99.99,
    method: partial.method ?? 'rtn',
    gptq: partial.gptq ?? { ...GPTQ_DEFAULTS },
    awqClip: partial.awqClip ?? true,
    lsqWeights: partial.lsqWeights ?? 'mse',
    format,
    opTypes: partial.opTypes ?? [...MODEL_OP_TYPES],
    exclude: partial.exclude ?? [],
    minElements: partial.minElements ?? 1024,
    initializerInputs: partial.initializerInputs ?? 'quantize',
  };
}

/** `*` wildcards → an anchored regular expression; every other character is literal. */
export function wildcard(pattern: string): RegExp {
  const body = pattern
    .split('*')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${body}$`, 's');
}

import type { SafetensorsDtype, SafetensorsSpec, SafetensorsTensor } from '../codecs/safetensors.js';
import type { CalibrationMethod, Scheme } from '../core/calibrate.js';
import type { FloatDType } from '../core/dtypes.js';
import { Errors } from '../errors.js';
import { wildcard } from '../onnx/weights/options.js';
import { packFactor } from './pack-quantized.js';

// compressed-tensors' pack-quantized layout, as its sources define it (vllm-project/
// compressed-tensors, compressors/quantized_compressors/pack_quantized.py and base.py,
// quantization/quant_args.py, quant_config.py, model_compressors/model_compressor.py
// update_config), for a quantized `<module>.weight` [out, in]:
//   <module>.weight_packed       I32 [out, ceil(in / (32/bits))]   pack_to_int32(q, packed_dim=1)
//   <module>.weight_scale        the weight's own dtype, [out, in/group_size] or [out, 1]
//   <module>.weight_zero_point   I32 [ceil(out / (32/bits)), groups], asymmetric only
//                                (pack_to_int32(zp, packed_dim=0); symmetric ones are not saved)
//   <module>.weight_shape        I64 [2] (torch.tensor(weight.shape); vLLM's parameter is int64)
// The scale keeps the weight's dtype because llm-compressor's observers compute it in the
// module's dtype and vLLM's weight_scale parameter has the model's dtype; the integers are
// computed against that rounded scale, so the report's errors are those a loader reconstructs.

export const WEIGHT_BITS = [4, 8] as const;
export const WEIGHT_GRANULARITIES = ['per_channel', 'per_group'] as const;

export interface CheckpointOptions {
  bits: (typeof WEIGHT_BITS)[number];
  scheme: Scheme;
  granularity: (typeof WEIGHT_GRANULARITIES)[number];
  group_size: number;
  calibration: CalibrationMethod;
  percentile: number;
  include: string[];
  exclude: string[];
}

export const FLOAT_DTYPES: Partial<Record<SafetensorsDtype, FloatDType>> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

/** A tensor of the checkpoint and what it becomes. */
export interface PlannedTensor {
  t: SafetensorsTensor;
  /** Why it stays as it is; undefined when it is quantized. */
  reason: string | undefined;
  /** <name minus .weight> when quantized. */
  module: string | undefined;
  /** What is written for it, in order: itself when copied, the four (or three) pack-quantized tensors otherwise. */
  outputs: SafetensorsSpec[];
}

/** Not reported as skipped: vectors (norms, biases) are never candidates. */
export const RANK_BELOW_2 = 'rank < 2';

type Pattern = { p: string; re: RegExp };

function skipReason(t: SafetensorsTensor, o: CheckpointOptions, includes: Pattern[], excludes: Pattern[]): string | undefined {
  if (t.shape.length < 2) return RANK_BELOW_2;
  if (!includes.some(({ re }) => re.test(t.name))) return `not matched by include (${o.include.join(', ')})`;
  const hit = excludes.find(({ re }) => re.test(t.name));
  if (hit) return `excluded by '${hit.p}'`;
  if (!FLOAT_DTYPES[t.dtype]) return `dtype ${t.dtype}: only F32, F16 and BF16 are quantized`;
  if (t.shape.length !== 2) return `rank ${t.shape.length}: the pack-quantized layout holds 2-D (Linear) weights`;
  if (!t.name.endsWith('.weight')) return `not a <module>.weight: compressed-tensors names the packed tensor <module>.weight_packed`;
  if (o.granularity === 'per_group' && t.shape[1]! % o.group_size !== 0) return `in_features ${t.shape[1]} is not a multiple of group_size ${o.group_size}`;
  if (t.shape[0] === 0 || t.shape[1] === 0) return 'empty';
  return undefined;
}

export function groupsOf(cols: number, o: CheckpointOptions): number {
  return o.granularity === 'per_group' ? cols / o.group_size : 1;
}

function packedOutputs(module: string, t: SafetensorsTensor, o: CheckpointOptions): SafetensorsSpec[] {
  const [rows, cols] = t.shape as [number, number];
  const pf = packFactor(o.bits);
  const groups = groupsOf(cols, o);
  const outputs: SafetensorsSpec[] = [
    { name: `${module}.weight_packed`, dtype: 'I32', shape: [rows, Math.ceil(cols / pf)] },
    { name: `${module}.weight_scale`, dtype: t.dtype, shape: [rows, groups] },
  ];
  if (o.scheme === 'asymmetric') outputs.push({ name: `${module}.weight_zero_point`, dtype: 'I32', shape: [Math.ceil(rows / pf), groups] });
  outputs.push({ name: `${module}.weight_shape`, dtype: 'I64', shape: [2] });
  return outputs;
}

/**
 * What every tensor becomes. `all` holds every tensor name of the checkpoint (all shards):
 * a packed name that one of them already has is refused (the file was quantized before).
 */
export function planTensors(tensors: SafetensorsTensor[], o: CheckpointOptions, all: ReadonlySet<string>): PlannedTensor[] {
  const includes = o.include.map((p) => ({ p, re: wildcard(p) }));
  const excludes = o.exclude.map((p) => ({ p, re: wildcard(p) }));
  return tensors.map((t) => {
    const reason = skipReason(t, o, includes, excludes);
    if (reason !== undefined) return { t, reason, module: undefined, outputs: [{ name: t.name, dtype: t.dtype, shape: t.shape }] };
    const module = t.name.slice(0, -'.weight'.length);
    const outputs = packedOutputs(module, t, o);
    const clash = outputs.find((x) => all.has(x.name));
    if (clash) throw new Errors.Safetensors(`safetensors: tensor '${t.name}' would be written as '${clash.name}', which the checkpoint already holds (already quantized?)`);
    return { t, reason, module, outputs };
  });
}

const OBSERVERS: Record<CalibrationMethod, string | null> = { minmax: 'minmax', mse: 'mse', percentile: null };

/**
 * The model's `quantization_config` (config.json), as compressed-tensors' update_config writes
 * it (without `version`, which names the compressed-tensors release that wrote the file and
 * which its parser drops): quant_method, the empty sparsity and transform configs, then
 * QuantizationConfig's fields. Targets are module names, matched exactly (no `re:` prefix).
 */
export function quantizationConfig(o: CheckpointOptions, targets: string[]): Record<string, unknown> {
  return {
    quant_method: 'compressed-tensors',
    sparsity_config: {},
    transform_config: {},
    config_groups: {
      group_0: {
        targets,
        weights: {
          num_bits: o.bits,
          type: 'int',
          symmetric: o.scheme === 'symmetric',
          group_size: o.granularity === 'per_group' ? o.group_size : null,
          strategy: o.granularity === 'per_group' ? 'group' : 'channel',
          block_structure: null,
          dynamic: false,
          actorder: null,
          observer: OBSERVERS[o.calibration],
          observer_kwargs: {},
        },
        input_activations: null,
        output_activations: null,
        format: 'pack-quantized',
      },
    },
    kv_cache_scheme: null,
    format: 'pack-quantized',
    quantization_status: 'compressed',
    global_compression_ratio: null,
    ignore: [],
  };
}

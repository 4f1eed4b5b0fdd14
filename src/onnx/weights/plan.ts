import { Errors } from '../../errors.js';
import type { Granularity } from '../../core/quantize.js';
import { gemmAttrs, type WeightCandidate } from './find-weights.js';
import { isCodebookFormat, MATMULNBITS_BLOCK_SIZES, type ModelBits, type ModelQuantOptions, type WeightFormat } from './options.js';

// The form each weight takes. The opsets below are the ones onnxruntime 1.30 checks
// (ONNX-NOTES): DequantizeLinear exists from opset 10, takes `axis` from 13, and
// `block_size` and int4 from 21. A model's opset is never raised: a weight that needs a
// newer one gets another form (auto) or is refused (an explicit format).

export const OPSET = { qdq: 10, qdqAxis: 13, qdqBlocked: 21, dynamic: 11, fp8: 19 } as const;

/**
 * onnxruntime 1.30's MatMulNBits refuses bits=3 when the session is created ("Only 2b, 4b and
 * 8b quantization is supported for MatMulNBits op, additional bits support is planned"),
 * and its com.microsoft DequantizeLinear refuses float8 inputs; both probed, see README.
 */
export const MATMULNBITS_BITS = [2, 4, 8] as const;

export interface WeightPlan {
  format: WeightFormat;
  bits: ModelBits;
  granularity: Granularity;
  groupSize: number;
  /** The axis the scales vary along: channel axis per channel, block axis per group. */
  axis: number;
  /** Why this differs from what was asked, for the report. */
  note?: string | undefined;
}

export type PlanResult = WeightPlan | { skip: string };

/** Model-wide option conflicts are the caller's to fix: they get a 400 naming the limit. */
export function checkOptionsForModel(opts: ModelQuantOptions, opset: number | undefined): void {
  const o = opset ?? 0;
  const bad = (msg: string): never => {
    throw new Errors.Option(msg);
  };
  if (opts.format === 'qdq') {
    if (o < OPSET.qdq) bad(`format=qdq needs opset ≥ ${OPSET.qdq}; this model has opset ${o}`);
    if (opts.bits < 8 && o < OPSET.qdqBlocked) {
      bad(`format=qdq with bits=${opts.bits} needs opset ≥ ${OPSET.qdqBlocked} (int4 DequantizeLinear); this model has opset ${o}: use format=matmulnbits or format=auto`);
    }
    if (opts.granularity === 'per_group' && o < OPSET.qdqBlocked) {
      bad(`format=qdq with granularity=per_group needs opset ≥ ${OPSET.qdqBlocked} (blocked DequantizeLinear); this model has opset ${o}`);
    }
    if (opts.granularity === 'per_channel' && o < OPSET.qdqAxis) {
      bad(`format=qdq with granularity=per_channel needs opset ≥ ${OPSET.qdqAxis}; this model has opset ${o}: use granularity=per_tensor`);
    }
  }
  if (isCodebookFormat(opts.format) && opts.method !== 'rtn') {
    bad(`method=${opts.method} fits a scale and zero point to a uniform integer grid; format=${opts.format} has a codebook of its own: use method=rtn`);
  }
  if (opts.format === 'fp8e4m3' || opts.format === 'fp8e5m2') {
    if (o < OPSET.fp8) {
      bad(
        `format=${opts.format} needs opset ≥ ${OPSET.fp8} (DequantizeLinear with float8 input); this model has opset ${o}, and onnxruntime 1.30 does not run float8 in the com.microsoft DequantizeLinear`,
      );
    }
    if (opts.granularity === 'per_group' && o < OPSET.qdqBlocked) {
      bad(`format=${opts.format} with granularity=per_group needs opset ≥ ${OPSET.qdqBlocked} (blocked DequantizeLinear); this model has opset ${o}`);
    }
  }
  if (opts.format === 'nf4') {
    if (opts.granularity !== 'per_group') bad(`format=nf4 quantizes in blocks: it needs granularity=per_group, got ${opts.granularity}`);
    if (!(MATMULNBITS_BLOCK_SIZES as readonly number[]).includes(opts.groupSize)) {
      bad(`format=nf4 (MatMulBnb4) needs group_size in ${MATMULNBITS_BLOCK_SIZES.join(', ')}; got ${opts.groupSize}`);
    }
  }
  if (opts.bits === 3 && (opts.format === 'matmulnbits' || opts.format === 'dynamic')) {
    bad(
      `bits=3 with format=${opts.format}: onnxruntime 1.30's MatMulNBits takes bits ${MATMULNBITS_BITS.join(', ')} only (it refuses 3 when the model loads); ` +
        `use format=qdq at opset ≥ ${OPSET.qdqBlocked} (3-bit values stored in int4) or bits=4`,
    );
  }
  if (opts.format === 'matmulnbits') {
    if (opts.granularity !== 'per_group') bad(`format=matmulnbits quantizes in blocks: it needs granularity=per_group, got ${opts.granularity}`);
    if (!(MATMULNBITS_BLOCK_SIZES as readonly number[]).includes(opts.groupSize)) {
      bad(`format=matmulnbits needs group_size in ${MATMULNBITS_BLOCK_SIZES.join(', ')}; got ${opts.groupSize}`);
    }
  }
  if (opts.format === 'dynamic') {
    if (opts.bits !== 8) bad(`format=dynamic is int8 only; got bits=${opts.bits}`);
    if (opts.granularity === 'per_group') bad('format=dynamic needs granularity=per_tensor or per_channel');
    if (o < OPSET.dynamic) bad(`format=dynamic needs opset ≥ ${OPSET.dynamic}; this model has opset ${o}`);
  }
}

/** The consumers' common axis, or undefined when a shared weight is read two ways. */
function common(c: WeightCandidate, key: 'channelAxis' | 'blockAxis'): number | undefined {
  const first = c.uses[0]![key];
  return c.uses.every((u) => u[key] === first) ? first : undefined;
}

/** Why MatMulNBits (or MatMulBnb4, which has the same rules) cannot carry this weight, or undefined when it can. */
export function matmulNBitsProblem(c: WeightCandidate, opts: Pick<ModelQuantOptions, 'granularity' | 'groupSize'>, op = 'MatMulNBits'): string | undefined {
  if (opts.granularity !== 'per_group') return `${op} is blocked, and granularity is ${opts.granularity}`;
  if (!(MATMULNBITS_BLOCK_SIZES as readonly number[]).includes(opts.groupSize)) return `${op} takes block sizes ${MATMULNBITS_BLOCK_SIZES.join('/')}, not ${opts.groupSize}`;
  if (c.uses.some((u) => u.opType === 'Conv')) return `${op} replaces MatMul and Gemm only, and a Conv reads this weight`;
  if (c.otherUses > 0) return 'the float weight is also read elsewhere (another op, a graph output or a subgraph)';
  if (c.tensor.dims.length !== 2) return `MatMulNBits needs a 2-D weight; this one has rank ${c.tensor.dims.length}`;
  if (common(c, 'blockAxis') === undefined) return 'its consumers read it along different axes';
  for (const u of c.uses) {
    if (u.opType === 'Gemm') {
      const g = gemmAttrs(u.node);
      if (g.alpha !== 1 || g.beta !== 1 || g.transA !== 0) return `Gemm '${u.node.name}' has alpha=${g.alpha}, beta=${g.beta}, transA=${g.transA} (${op} needs 1, 1, 0)`;
    }
  }
  return undefined;
}

function dynamicProblem(c: WeightCandidate): string | undefined {
  if (c.uses.some((u) => u.opType === 'Conv')) return 'dynamic quantization covers MatMul and Gemm; Conv weights need format=qdq';
  if (c.otherUses > 0) return 'the float weight is also read elsewhere (another op, a graph output or a subgraph)';
  if (c.tensor.dims.length !== 2) return `dynamic quantization needs a 2-D weight; this one has rank ${c.tensor.dims.length}`;
  if (common(c, 'blockAxis') === undefined) return 'its consumers read it along different axes';
  for (const u of c.uses) {
    if (u.opType === 'Gemm') {
      const g = gemmAttrs(u.node);
      if (g.alpha !== 1 || g.beta !== 1 || g.transA !== 0) return `Gemm '${u.node.name}' has alpha=${g.alpha}, beta=${g.beta}, transA=${g.transA} (dynamic needs 1, 1, 0)`;
    }
  }
  return undefined;
}

/** int8 QDQ at the finest granularity the opset allows: auto's fallback. */
function int8Qdq(c: WeightCandidate, opts: ModelQuantOptions, opset: number, why: string | undefined): PlanResult {
  if (opset < OPSET.qdq) return { skip: `DequantizeLinear needs opset ≥ ${OPSET.qdq}; this model has opset ${opset}` };
  const want = opts.bits === 8 ? opts.granularity : 'per_channel';
  return qdq(c, { ...opts, bits: 8, granularity: want, groupSize: opts.bits === 8 ? opts.groupSize : 128 }, opset, why);
}

/** QDQ, stepping the granularity down where the opset or a shared weight requires it. */
function qdq(c: WeightCandidate, opts: ModelQuantOptions, opset: number, why: string | undefined): WeightPlan {
  const notes = why ? [why] : [];
  let granularity = opts.granularity;
  if (granularity === 'per_group' && opset < OPSET.qdqBlocked) {
    notes.push(`blocked DequantizeLinear needs opset ≥ ${OPSET.qdqBlocked} (model: ${opset}): per channel instead`);
    granularity = 'per_channel';
  }
  if (granularity === 'per_channel' && opset < OPSET.qdqAxis) {
    notes.push(`per-channel DequantizeLinear needs opset ≥ ${OPSET.qdqAxis} (model: ${opset}): per tensor instead`);
    granularity = 'per_tensor';
  }
  const axisKey = granularity === 'per_group' ? 'blockAxis' : 'channelAxis';
  let axis = granularity === 'per_tensor' ? 0 : common(c, axisKey);
  if (axis === undefined) {
    notes.push('its consumers read it along different axes: per tensor');
    granularity = 'per_tensor';
    axis = 0;
  }
  return { format: 'qdq', bits: opts.bits, granularity, groupSize: opts.groupSize, axis, note: notes.length ? notes.join('; ') : undefined };
}

function matmulNBits(c: WeightCandidate, opts: ModelQuantOptions, note?: string): WeightPlan {
  return { format: 'matmulnbits', bits: opts.bits, granularity: 'per_group', groupSize: opts.groupSize, axis: c.uses[0]!.blockAxis, note };
}

export function planWeight(c: WeightCandidate, opts: ModelQuantOptions, opset: number | undefined): PlanResult {
  const o = opset ?? 0;
  switch (opts.format) {
    case 'qdq':
      return qdq(c, opts, o, undefined);
    case 'matmulnbits': {
      const problem = matmulNBitsProblem(c, opts);
      return problem ? { skip: problem } : matmulNBits(c, opts);
    }
    case 'dynamic': {
      const problem = dynamicProblem(c);
      if (problem) return { skip: problem };
      const axis = opts.granularity === 'per_channel' ? c.uses[0]!.channelAxis : 0;
      return { format: 'dynamic', bits: 8, granularity: opts.granularity, groupSize: opts.groupSize, axis };
    }
    case 'nf4': {
      const problem = matmulNBitsProblem(c, opts, 'MatMulBnb4');
      return problem ? { skip: problem } : { format: 'nf4', bits: 4, granularity: 'per_group', groupSize: opts.groupSize, axis: c.uses[0]!.blockAxis };
    }
    case 'fp8e4m3':
    case 'fp8e5m2':
      // The QDQ layout rules (axis per consumer, blocked from opset 21) with float8 values.
      return { ...qdq(c, opts, o, undefined), format: opts.format, bits: 8 };
    case 'auto':
      return planAuto(c, opts, o);
  }
}

/**
 * auto: int8 → QDQ. 4-bit → blocked QDQ where the opset has int4, else MatMulNBits.
 * 2-bit → MatMulNBits first (it stores 2 bits per weight; QDQ has no 2-bit type at these
 * opsets and would spend 4), then QDQ in int4. Whatever no low-bit form carries is int8.
 */
function planAuto(c: WeightCandidate, opts: ModelQuantOptions, opset: number): PlanResult {
  if (opts.bits === 8) return int8Qdq(c, opts, opset, undefined);
  if (opts.bits === 3) {
    const why = `onnxruntime 1.30's MatMulNBits refuses bits=3`;
    if (opset >= OPSET.qdqBlocked) return qdq(c, opts, opset, `3-bit values stored as int4 (${why})`);
    return int8Qdq(c, opts, opset, `int8 instead of 3-bit: ${why}, and 4-bit QDQ needs opset ≥ ${OPSET.qdqBlocked} (model: ${opset})`);
  }
  const nbits = matmulNBitsProblem(c, opts);
  if (opts.bits === 2 && !nbits) return matmulNBits(c, opts);
  if (opset >= OPSET.qdqBlocked) return qdq(c, opts, opset, opts.bits === 2 ? `2-bit values stored as int4: ${nbits}` : undefined);
  if (!nbits) return matmulNBits(c, opts);
  return int8Qdq(c, opts, opset, `int8 instead of ${opts.bits}-bit: 4-bit QDQ needs opset ≥ ${OPSET.qdqBlocked} (model: ${opset}) and ${nbits}`);
}

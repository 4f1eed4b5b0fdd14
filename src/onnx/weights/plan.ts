import { Errors } from '../../errors.js';
import { attrInt, DataType, dataTypeName } from '../proto/model.js';
import type { Granularity } from '../../core/quantize.js';
import { gemmAttrs, type WeightCandidate } from './find-weights.js';
import { isCodebookFormat, MATMULNBITS_BLOCK_SIZES, type ModelBits, type ModelQuantOptions, type WeightFormat } from './options.js';

// The form each weight takes. The opsets below are the ones onnxruntime 1.30 checks
// (ONNX-NOTES): DequantizeLinear exists from opset 10, takes `axis` from 13, and
// `block_size` and int4 from 21. A model's opset is never raised: below 13 the weight gets
// the com.microsoft DequantizeLinear (axis at any opset, see dq-form.ts), a 4-bit weight
// below 21 gets MatMulNBits or falls back to int8 (auto), or the option is refused (an
// explicit format=qdq with 4 bits or blocks).

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
  checkOptions(opts, opset ?? 0);
}

/**
 * The conflicts among the options alone, for when the model's opset is not known yet (a job
 * checks them before it stores its upload): checkOptionsForModel without the opset rules.
 */
export function checkOptionConflicts(opts: ModelQuantOptions): void {
  checkOptions(opts, undefined);
}

/** `opset` undefined: the rules that need it are left out. */
function checkOptions(opts: ModelQuantOptions, opset: number | undefined): void {
  const known = opset !== undefined;
  const o = opset ?? 0;
  const bad = (msg: string): never => {
    throw new Errors.Option(msg);
  };
  if (opts.format === 'qdq' && known) {
    if (opts.bits < 8 && o < OPSET.qdqBlocked) {
      bad(`format=qdq with bits=${opts.bits} needs opset ≥ ${OPSET.qdqBlocked} (int4 DequantizeLinear); this model has opset ${o}: use format=matmulnbits or format=auto`);
    }
    if (opts.granularity === 'per_group' && o < OPSET.qdqBlocked) {
      bad(`format=qdq with granularity=per_group needs opset ≥ ${OPSET.qdqBlocked} (blocked DequantizeLinear); this model has opset ${o}`);
    }
  }
  if (opts.lsqWeights === 'magnitude' && opts.method !== 'lsq') {
    bad(`lsq_weights=magnitude weights lsq's least-squares fit; method=${opts.method} does not use it: add method=lsq or drop lsq_weights`);
  }
  if (isCodebookFormat(opts.format) && opts.method !== 'rtn') {
    bad(`method=${opts.method} fits a scale and zero point to a uniform integer grid; format=${opts.format} has a codebook of its own: use method=rtn`);
  }
  if ((opts.format === 'fp8e4m3' || opts.format === 'fp8e5m2') && known) {
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
  }
}

/** The consumers' common axis, or undefined when a shared weight is read two ways. */
function common(c: WeightCandidate, key: 'channelAxis' | 'blockAxis'): number | undefined {
  const first = c.uses[0]![key];
  return c.uses.every((u) => u[key] === first) ? first : undefined;
}

/**
 * Why com.microsoft GatherBlockQuantized cannot carry this embedding (all of whose readers
 * are Gathers), or undefined. Its contract, as onnxruntime-node 1.30 runs it: uint8 data
 * [V, D/2] packed LSB-first along D, scales [V, D/block] in the output's float type, zero
 * points packed the same way or absent (meaning 8), gather_axis 0, quantize_axis 1.
 */
function gatherBlockProblem(c: WeightCandidate, opts: Pick<ModelQuantOptions, 'groupSize'> & { bits?: number }): string | undefined {
  if (opts.bits !== undefined && opts.bits !== 4) return `GatherBlockQuantized stores 4-bit embeddings here, not ${opts.bits}-bit`;
  if (c.tensor.dims.length !== 2) return `GatherBlockQuantized is used for 2-D embeddings; this one has rank ${c.tensor.dims.length}`;
  const bad = c.uses.find((u) => u.opType === 'Gather' && (u.channelAxis !== 0 || u.via.some((op) => op !== 'Identity')));
  if (bad) return `a Gather reads it ${bad.via.length ? `through ${bad.via.join(' → ')}` : 'along an axis other than 0'}`;
  // A tied output projection reads the same packed rows as MatMulNBits' B: its K must run along the rows.
  const other = c.uses.find((u) => u.opType !== 'Gather' && (u.blockAxis !== 1 || u.via.includes('Slice')));
  if (other) return `the ${other.opType} that shares the embedding reads it with K along axis ${other.blockAxis}, not along the rows`;
  if (c.otherUses > 0) return 'the float embedding is also read elsewhere (another op or a graph output)';
  const type = c.uses[0]!.valueType;
  if (c.uses.some((u) => u.valueType !== type)) return 'its consumers read it in different float types';
  if (type !== DataType.float32 && type !== DataType.float16) return `read as ${dataTypeName(type)} (GatherBlockQuantized runs float32 and float16 here)`;
  if (c.tensor.dims[1]! % opts.groupSize !== 0) return `GatherBlockQuantized needs the row length ${c.tensor.dims[1]} to be a multiple of group_size ${opts.groupSize}`;
  return undefined;
}

/**
 * Why MatMulNBits (or GatherBlockQuantized, for embeddings; or MatMulBnb4, which has the same
 * rules but no Gather form) cannot carry this weight, or undefined when it can.
 */
export function matmulNBitsProblem(c: WeightCandidate, opts: Pick<ModelQuantOptions, 'granularity' | 'groupSize'> & { bits?: number }, op = 'MatMulNBits'): string | undefined {
  if (opts.granularity !== 'per_group') return `${op} is blocked, and granularity is ${opts.granularity}`;
  if (!(MATMULNBITS_BLOCK_SIZES as readonly number[]).includes(opts.groupSize)) return `${op} takes block sizes ${MATMULNBITS_BLOCK_SIZES.join('/')}, not ${opts.groupSize}`;
  const gathers = c.uses.filter((u) => u.opType === 'Gather').length;
  if (gathers > 0 && op !== 'MatMulNBits') return `${op} replaces MatMul and Gemm only, and a Gather reads this weight`;
  if (gathers > 0 && c.uses.every((u) => u.opType === 'Gather' || u.opType === 'MatMul' || u.opType === 'Gemm')) {
    const problem = gatherBlockProblem(c, opts);
    if (problem || gathers === c.uses.length) return problem;
    // Tied: the MatMul/Gemm readers go on to the MatMulNBits checks below.
  }
  const notMatMul = c.uses.find((u) => u.opType !== 'MatMul' && u.opType !== 'Gemm' && !(gathers > 0 && u.opType === 'Gather'));
  if (notMatMul) return `${op} replaces MatMul and Gemm only, and a ${notMatMul.opType} reads this weight`;
  const through = c.uses.find((u) => u.via.includes('Slice'));
  if (through) return `a ${through.opType} reads a slice of it (through ${through.via.join(' → ')})`;
  if (c.otherUses > 0) return 'the float weight is also read elsewhere (another op or a graph output)';
  const type = c.uses[0]!.valueType;
  if (c.uses.some((u) => u.valueType !== type)) return 'its consumers read it in different float types';
  if (type === DataType.bfloat16) return `read as bfloat16 (onnxruntime has no bfloat16 ${op} on CPU)`;
  if (type !== DataType.float32 && type !== DataType.float16) return `read as ${dataTypeName(type)}`;
  if (c.tensor.dims.length !== 2) return `${op} needs a 2-D weight; this one has rank ${c.tensor.dims.length}`;
  if (common(c, 'blockAxis') === undefined) return 'its consumers read it along different axes';
  for (const u of c.uses) {
    if (u.opType === 'Gemm') {
      const g = gemmAttrs(u.node);
      if (g.alpha !== 1 || g.beta !== 1 || g.transA !== 0) return `Gemm '${u.node.name}' has alpha=${g.alpha}, beta=${g.beta}, transA=${g.transA} (${op} needs 1, 1, 0)`;
    }
  }
  return undefined;
}

/** Why com.microsoft DynamicQuantizeLSTM cannot carry this LSTM weight (W or R), or undefined. */
function dynamicLstmProblem(c: WeightCandidate, scheme: string): string | undefined {
  if (c.uses.some((u) => u.opType !== 'LSTM' || u.via.length > 0)) return 'a weight read by an LSTM and by something else';
  if (c.otherUses > 0) return 'the float weight is also read elsewhere (another op or a graph output)';
  if (c.tensor.dataType !== DataType.float32) return `a ${dataTypeName(c.tensor.dataType)} weight: DynamicQuantizeLSTM takes float32; use format=qdq`;
  if (scheme !== 'symmetric') return 'DynamicQuantizeLSTM is used with symmetric int8 weights here: use scheme=symmetric or format=qdq';
  const layout = c.uses.find((u) => attrInt(u.node, 'layout', 0) !== 0);
  if (layout) return `LSTM '${layout.node.name}' has layout=1 (batch first), which DynamicQuantizeLSTM does not take`;
  return undefined;
}

function dynamicProblem(c: WeightCandidate, scheme: string): string | undefined {
  if (c.uses.length > 0 && c.uses.every((u) => u.opType === 'LSTM')) return dynamicLstmProblem(c, scheme);
  const notMatMul = c.uses.find((u) => u.opType !== 'MatMul' && u.opType !== 'Gemm');
  if (notMatMul) return `dynamic quantization covers MatMul, Gemm and LSTM; ${notMatMul.opType} weights need format=qdq`;
  const through = c.uses.find((u) => u.via.includes('Slice'));
  if (through) return `a ${through.opType} reads a slice of it (through ${through.via.join(' → ')}): format=qdq carries it`;
  if (c.otherUses > 0) return 'the float weight is also read elsewhere (another op or a graph output)';
  const seen = c.uses.find((u) => u.valueType !== DataType.float32);
  if (seen) return `read as ${dataTypeName(seen.valueType)}: DynamicQuantizeLinear takes float32 activations; use format=qdq`;
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
  const want = opts.bits === 8 ? opts.granularity : 'per_channel';
  return qdq(c, { ...opts, bits: 8, granularity: want, groupSize: opts.bits === 8 ? opts.groupSize : 128 }, opset, why);
}

/**
 * Per group on a blocked axis of length 1, or undefined. Blocks of group_size run along the
 * weight's blocked axis (C/group for a Conv, K for a MatMul) and never across it: where that
 * axis has length 1 (a depthwise Conv [M, 1, kh, kw], any Conv with one input channel per
 * group, a MatMul with K = 1) every block is a single weight with a float scale of its own,
 * exact to float rounding and bigger than the float weight. Such a weight is planned per
 * channel. Where a channel's row is one weight too (no other axis), those are the same scales
 * at the asked bits. Where a row holds several (a 3×3 depthwise row is 9), per channel at
 * fewer than 8 bits is a different trade from the one per group made, not the same one
 * cheaper: on the trained grouped glyph CNN (its one-channel stem and its depthwise Conv), 4-bit
 * rtn's held-back SNR fell from per group's 17.20 dB to 8.72 per channel and is 16.99 int8 per
 * channel (bench/README.md "Per group on a length-1 axis"). So the row is int8 there, at a third
 * of per group's bytes, and says why; a request for per_channel itself gets the asked bits. A
 * blocked axis longer than 1 but shorter than group_size keeps its blocks (each the whole
 * axis): finer than asked, not degenerate.
 */
function singleWeightBlocks(c: WeightCandidate, bits: ModelBits): { bits: ModelBits; note: string } | undefined {
  const axis = common(c, 'blockAxis');
  if (axis === undefined || c.tensor.dims[axis] !== 1) return undefined;
  const channel = common(c, 'channelAxis');
  // A shared weight read along different channel axes goes on to per tensor (qdq below).
  const row = channel === undefined ? undefined : c.elements / c.tensor.dims[channel]!;
  const int8 = row !== undefined && row > 1 && bits < 8;
  const each = `each of its ${c.elements} weights its own scale`;
  const instead = int8
    ? `per channel instead, in int8 (${bits}-bit rows of ${row} weights lose far more: ask granularity=per_channel for them)`
    : `per channel instead${row === 1 ? ' (the same scales, without blocks)' : ''}`;
  const conv = c.uses.find((u) => u.opType === 'Conv');
  let note: string;
  if (conv) {
    const group = attrInt(conv.node, 'group', 1);
    const what = group > 1 ? `depthwise Conv (group=${group}, one input channel per group)` : 'a Conv with one input channel';
    note = `${what}: blocks along C/group = 1 would give ${each} (more bytes than the float weight): ${instead}`;
  } else {
    note = `its blocked axis ${axis} has length 1: blocks along it would give ${each}: ${instead}`;
  }
  return { bits: int8 ? 8 : bits, note };
}

/** QDQ, stepping the granularity down where the weight's shape, the opset or a shared weight requires it. */
function qdq(c: WeightCandidate, opts: ModelQuantOptions, opset: number, why: string | undefined): WeightPlan {
  const notes = why ? [why] : [];
  let granularity = opts.granularity;
  let bits = opts.bits;
  const single = granularity === 'per_group' ? singleWeightBlocks(c, bits) : undefined;
  if (single) {
    // auto's reason for int4 storage does not apply to a weight that leaves for int8.
    if (single.bits !== bits) notes.length = 0;
    notes.push(single.note);
    granularity = 'per_channel';
    bits = single.bits;
  }
  if (granularity === 'per_group' && opset < OPSET.qdqBlocked) {
    notes.push(`blocked DequantizeLinear needs opset ≥ ${OPSET.qdqBlocked} (model: ${opset}): per channel instead`);
    granularity = 'per_channel';
  }
  const axisKey = granularity === 'per_group' ? 'blockAxis' : 'channelAxis';
  let axis = granularity === 'per_tensor' ? 0 : common(c, axisKey);
  if (axis === undefined) {
    notes.push('its consumers read it along different axes: per tensor');
    granularity = 'per_tensor';
    axis = 0;
  }
  // DequantizeLinear's block_size stays group_size, but a shorter axis makes every block the
  // whole axis: finer (and more scales) than the row's group_size says, so the row says so.
  const length = c.tensor.dims[axis]!;
  if (granularity === 'per_group' && length < opts.groupSize) {
    notes.push(`its blocked axis ${axis} holds ${length} values, fewer than group_size=${opts.groupSize}: each block is those ${length} (one scale per ${length} weights)`);
  }
  return { format: 'qdq', bits, granularity, groupSize: opts.groupSize, axis, note: notes.length ? notes.join('; ') : undefined };
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
      const problem = dynamicProblem(c, opts.scheme);
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

// The WebAssembly kernels against the reference loops (src/core/reference/), bit for bit:
// integers, scales, zero points, clipped counts, max_error and reconstructions must be equal;
// only the error sums may differ, within 1e-6 relative (float32 lanes, sums-close.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';

import {
  calibrate,
  dequantizeWith,
  planParams,
  quantize,
  quantizeIntegers,
  quantizeValues,
  quantizeWith,
  type Granularity,
  type QuantParams,
  type QuantSpec,
} from '../../src/core/quantize.js';
import { paramsFromRange, shrinkRange, sumSquaredError, type Scheme } from '../../src/core/calibrate.js';
import { squaredErrors } from '../../src/core/kernels/mse.js';
import { INT_DTYPE_INFO, containerFor, intRange, type IntDType } from '../../src/core/dtypes.js';
import { pack, unpack } from '../../src/core/pack.js';
import { dequantizeWithReference, minmaxRangesReference, quantizeWithReference } from '../../src/core/reference/quantize.js';
import { packReference, unpackReference } from '../../src/core/reference/pack.js';
import { arenaAlloc } from '../../src/core/kernels/arenas.js';
import { ARENA_BASE, CHUNK, createArena, getKernels, kernelsFor, LAYOUT } from '../../src/core/kernels/runtime.js';
import { kernelShape } from '../../src/core/kernels/segments.js';
import { sumsDiffer } from './sums-close.js';
import { mulberry32 } from '../../src/core/random.js';

const FC = { seed: 4242, numRuns: 400 };

/** Uniform in [0, 1) from a seeded stream, so every run sees the same data. */
function random(seed: number): () => number {
  const next = mulberry32(seed);
  return () => next() / 4294967296;
}

type Kind = 'uniform' | 'wide' | 'zeros' | 'ties' | 'tiny';

/** Data of one kind: wide spans every float32 magnitude; ties sit exactly halfway at scale 2^-3. */
function data(n: number, kind: Kind, seed: number): Float32Array {
  const u = random(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const r = u();
    switch (kind) {
      case 'uniform':
        x[i] = (r * 2 - 1) * 3;
        break;
      case 'wide':
        x[i] = (u() < 0.5 ? -1 : 1) * 2 ** (r * 250 - 125);
        break;
      case 'zeros':
        x[i] = r < 0.7 ? (r < 0.35 ? 0 : -0) : r * 5 - 2;
        break;
      case 'ties':
        x[i] = (Math.floor(r * 600) - 300 + 0.5) / 8;
        break;
      case 'tiny':
        x[i] = (r * 2 - 1) * 1e-41;
        break;
    }
  }
  return x;
}

function bytesOf(a: ArrayBufferView): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): string | null {
  if (a.length !== b.length) return `length ${a.length} vs ${b.length}`;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return `[${i}] ${a[i]} vs ${b[i]}`;
  return null;
}

/** The reference's calibrate for min-max: per-group min/max, then paramsFromRange. */
function referenceMinmaxParams(x: Float32Array, shape: number[], spec: QuantSpec): { scale: Float32Array; zeroPoint: Int32Array } {
  const plan = planParams(shape, spec.granularity, spec.axis, spec.groupSize);
  const { lo, hi } = minmaxRangesReference(x, plan);
  const signed = spec.scheme === 'symmetric';
  const ip = { bits: spec.bits, scheme: spec.scheme, ...intRange(spec.bits, signed) };
  const scale = new Float32Array(plan.count);
  const zeroPoint = new Int32Array(plan.count);
  for (let p = 0; p < plan.count; p++) {
    const alpha = Math.max(Math.abs(lo[p]!), Math.abs(hi[p]!));
    const r = paramsFromRange(signed ? { lo: -alpha, hi: alpha } : { lo: lo[p]!, hi: hi[p]! }, ip);
    scale[p] = r.scale;
    zeroPoint[p] = r.zeroPoint;
  }
  return { scale, zeroPoint };
}

// One arena for the tests, reused: tensors are copied into it at an offset so the kernels
// read them in place (as they read request bodies) instead of staging them.
// Outputs are allocated after it (arenaAlloc); each copy frees them again, zeroing the space
// (as arenaAlloc promises) after checking that nothing was written past the last allocation.
const ARENA_BYTES = 16 << 20;
const SPARE = 32 << 20;
const arena = createArena(ARENA_BYTES, SPARE)!;
const top = new Int32Array(arena.buffer, LAYOUT.top, 1);
const FREE = top[0]!;

function resetArena(): void {
  const used = new Uint8Array(arena.buffer, FREE, top[0]! - FREE);
  const after = new Uint8Array(arena.buffer, top[0]!, Math.min(4096, arena.buffer.byteLength - top[0]!));
  assert.ok(after.every((b) => b === 0), 'a kernel wrote past the last allocation in the arena');
  used.fill(0);
  top[0] = FREE;
}

/** A copy of a in the test arena, `skew` bytes past its start (a multiple of the element size). */
function resident<T extends Float32Array | Int8Array | Uint8Array | Int16Array | Uint16Array>(a: T, skew = 0): T {
  assert.ok(skew + a.byteLength <= ARENA_BYTES);
  resetArena();
  const Ctor = a.constructor as new (b: ArrayBufferLike, off: number, n: number) => T;
  const view = new Ctor(arena.buffer, ARENA_BASE + skew, a.length);
  view.set(a);
  return view;
}

/** Every mismatch between the kernels and the reference on one tensor and spec. */
function compare(x: Float32Array, shape: number[], spec: QuantSpec): string[] {
  const problems: string[] = [];
  const note = (what: string, d: string | null) => {
    if (d) problems.push(`${what}: ${d}`);
  };
  const params = calibrate(x, shape, spec);
  if (spec.calibration === 'minmax') {
    const ref = referenceMinmaxParams(x, shape, spec);
    note('scale', firstDiff(params.scale, ref.scale));
    note('zero point', firstDiff(params.zeroPoint, ref.zeroPoint));
  }
  const fast = quantizeWith(x, params);
  const ref = quantizeWithReference(x, params);
  note('q', firstDiff(fast.q, ref.q));
  problems.push(...sumsDiffer(fast.sums, ref.sums).map((d) => `sums: ${d}`));
  const values = quantizeValues(x, params);
  note('q without sums', firstDiff(values.q, ref.q));
  if (values.clipped !== ref.sums.clipped) problems.push(`clipped without sums: ${values.clipped} vs ${ref.sums.clipped}`);
  // quantize() and quantizeIntegers() fuse min-max calibration into the pass where the layout allows.
  const whole = quantize(x, shape, spec);
  note('quantize() scale', firstDiff(whole.params.scale, params.scale));
  note('quantize() zero point', firstDiff(whole.params.zeroPoint, params.zeroPoint));
  note('quantize() q', firstDiff(whole.q, ref.q));
  problems.push(...sumsDiffer(whole.sums, ref.sums).map((d) => `quantize() sums: ${d}`));
  const ints = quantizeIntegers(x, shape, spec);
  note('quantizeIntegers() scale', firstDiff(ints.params.scale, params.scale));
  note('quantizeIntegers() zero point', firstDiff(ints.params.zeroPoint, params.zeroPoint));
  note('quantizeIntegers() q', firstDiff(ints.q, ref.q));
  if (ints.clipped !== ref.sums.clipped) problems.push(`quantizeIntegers() clipped: ${ints.clipped} vs ${ref.sums.clipped}`);
  const xHat = dequantizeWith(ref.q, params);
  if (!bytesOf(xHat).equals(bytesOf(dequantizeWithReference(ref.q, params)))) {
    note('dequantize', firstDiff(xHat, dequantizeWithReference(ref.q, params)) ?? 'bytes differ');
  }
  return problems;
}

const specArb = (rank: number) =>
  fc.record({
    bits: fc.integer({ min: 2, max: 16 }),
    scheme: fc.constantFrom<Scheme>('symmetric', 'asymmetric'),
    granularity: rank === 0 ? fc.constant<Granularity>('per_tensor') : fc.constantFrom<Granularity>('per_tensor', 'per_channel', 'per_group'),
    axis: rank === 0 ? fc.constant(0) : fc.integer({ min: -rank, max: rank - 1 }),
    groupSize: fc.oneof(fc.integer({ min: 1, max: 9 }), fc.constantFrom(16, 32, 128)),
    calibration: fc.constant('minmax' as const),
    percentile: fc.constant(99.99),
  });

test('kernels = reference on random shapes, options and data (q, parameters, clipping, max_error bit for bit)', () => {
  const kinds: Kind[] = ['uniform', 'uniform', 'wide', 'zeros', 'ties', 'tiny'];
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 0, maxLength: 4 }).chain((shape) =>
        fc.record({ shape: fc.constant(shape), spec: specArb(shape.length), kind: fc.constantFrom(...kinds), seed: fc.nat() }),
      ),
      ({ shape, spec, kind, seed }) => {
        const n = shape.reduce((a, b) => a * b, 1);
        const x = data(n, kind, seed);
        assert.deepEqual(compare(x, shape, spec), [], `${kind} [${shape}] ${JSON.stringify(spec)}`);
        assert.deepEqual(compare(resident(x, 4 * (seed % 5)), shape, spec), [], `in an arena: ${kind} [${shape}] ${JSON.stringify(spec)}`);
      },
    ),
    FC,
  );
});

// Layouts that cross the staging size (CHUNK elements) in each way the segment walkers cut
// them: many rows per call, many runs per call, a run split into pieces, a row split into
// column pieces, short last groups.
const BIG: Array<{ shape: number[]; granularity: Granularity; axis: number; groupSize: number }> = [
  { shape: [2 * CHUNK + 7], granularity: 'per_tensor', axis: 0, groupSize: 1 },
  { shape: [3, CHUNK + 5], granularity: 'per_channel', axis: 0, groupSize: 1 },
  { shape: [70, 1501], granularity: 'per_channel', axis: 0, groupSize: 1 },
  { shape: [5, 3, 20001], granularity: 'per_channel', axis: 1, groupSize: 1 },
  { shape: [3, CHUNK + 3], granularity: 'per_channel', axis: -1, groupSize: 1 },
  { shape: [900, 7, 3], granularity: 'per_channel', axis: 1, groupSize: 1 },
  { shape: [70, 1003], granularity: 'per_group', axis: -1, groupSize: 32 },
  { shape: [2, CHUNK + 9], granularity: 'per_group', axis: 1, groupSize: CHUNK + 2 },
  { shape: [100, 701], granularity: 'per_group', axis: 0, groupSize: 16 },
  { shape: [9, CHUNK + 1], granularity: 'per_group', axis: 0, groupSize: 4 },
  { shape: [3, 40, 500], granularity: 'per_group', axis: 1, groupSize: 6 },
];

test('kernels = reference on tensors larger than one staging chunk', () => {
  let seed = 1;
  const forms = new Set<string>();
  for (const layout of BIG) {
    for (const [bits, scheme] of [[8, 'symmetric'], [4, 'asymmetric'], [12, 'asymmetric'], [16, 'symmetric']] as const) {
      const spec: QuantSpec = { bits, scheme, granularity: layout.granularity, axis: layout.axis, groupSize: layout.groupSize, calibration: 'minmax', percentile: 99.99 };
      const n = layout.shape.reduce((a, b) => a * b, 1);
      const x = data(n, seed % 3 === 0 ? 'wide' : 'uniform', seed++);
      forms.add(kernelShape(planParams(layout.shape, layout.granularity, layout.axis, layout.groupSize)).form);
      assert.deepEqual(compare(x, layout.shape, spec), [], `[${layout.shape}] ${JSON.stringify(spec)}`);
      assert.deepEqual(compare(resident(x, 4), layout.shape, spec), [], `in an arena: [${layout.shape}] ${JSON.stringify(spec)}`);
    }
  }
  assert.deepEqual([...forms].sort(), ['rows', 'runs']);
});

// quantize.wat "groups" (min-max per group, four groups at a time; the error sums through
// $spanr) takes per-group layouts along the last axis whose groups all have one length, a
// multiple of 4;
// "fused" the groups past the last multiple of four in each call. Counts of groups that are
// and are not multiples of four, groups that fill a whole staging call, data whose range
// overflows float32 (the float64 fallback for scales), every bit width and both schemes.
test('four groups at a time = reference for every group length that is a multiple of 4', () => {
  let seed = 100;
  const layouts: number[][] = [[3, 4 * 5], [7, 8 * 9], [5, 12 * 3], [4, 16 * 11], [33, 32 * 7], [2, 32 * 4], [6, 128 * 3], [1, 4 * 3], [2, CHUNK], [3, 2048 * 2]];
  for (const [rows, cols] of layouts) {
    for (const groupSize of [4, 8, 12, 16, 32, 128, 2048]) {
      if (cols! % groupSize !== 0) continue;
      for (const [bits, scheme] of [[8, 'symmetric'], [8, 'asymmetric'], [4, 'symmetric'], [4, 'asymmetric'], [2, 'asymmetric'], [3, 'symmetric'], [12, 'asymmetric'], [16, 'symmetric']] as const) {
        const spec: QuantSpec = { bits, scheme, granularity: 'per_group', axis: -1, groupSize, calibration: 'minmax', percentile: 99.99 };
        const kind: Kind = seed % 4 === 0 ? 'wide' : seed % 4 === 1 ? 'zeros' : 'uniform';
        const x = data(rows! * cols!, kind, seed++);
        assert.deepEqual(compare(x, [rows!, cols!], spec), [], `${kind} [${rows}, ${cols}] ${JSON.stringify(spec)}`);
        assert.deepEqual(compare(resident(x, 4), [rows!, cols!], spec), [], `in an arena: ${kind} [${rows}, ${cols}] ${JSON.stringify(spec)}`);
      }
    }
  }
});

function manualParams(shape: number[], granularity: Granularity, bits: number, scheme: Scheme, scale: number, zeroPoint: number): QuantParams {
  const signed = scheme === 'symmetric';
  const plan = planParams(shape, granularity, -1, 2);
  const dtype: IntDType = containerFor(bits, signed);
  return {
    bits,
    scheme,
    ...intRange(bits, signed),
    dtype,
    plan,
    scale: new Float32Array(plan.count).fill(scale),
    zeroPoint: new Int32Array(plan.count).fill(zeroPoint),
  };
}

test('exact ties round to even, the clamp and the zero point, with given parameters', () => {
  // scale 1/8: x = (k + 0.5) / 8 divides to exactly k + 0.5.
  const x = data(4099, 'ties', 7);
  for (const granularity of ['per_tensor', 'per_group', 'per_channel'] as const) {
    for (const [bits, scheme, zp] of [[8, 'symmetric', 0], [4, 'symmetric', 0], [8, 'asymmetric', 131], [16, 'asymmetric', 40000], [2, 'asymmetric', 1]] as const) {
      const params = manualParams([4099], granularity, bits, scheme, 0.125, zp);
      const fast = quantizeWith(x, params);
      const ref = quantizeWithReference(x, params);
      assert.equal(firstDiff(fast.q, ref.q), null, `${granularity} ${bits} ${scheme}`);
      assert.deepEqual(sumsDiffer(fast.sums, ref.sums), []);
      assert.ok(ref.sums.clipped > 0 || bits === 16);
    }
  }
});

test('a NaN in one kernel call and a clipped value in another: the NaN count (per call that clipped) finds it', () => {
  // quantizeValues / quantizeIntegers no longer scan the whole tensor for NaN when something
  // clipped: each kernel call that clipped is scanned instead. NaN far from the clip, in
  // another call, with calls that clip and hold no NaN around it.
  const n = 3 * CHUNK + 7;
  for (const nanAt of [-1, 5, 2 * CHUNK + 5, n - 2]) {
    const x = data(n, 'uniform', 11);
    x[CHUNK + 9] = 1e6;
    if (nanAt >= 0) x[nanAt] = NaN;
    const params = manualParams([n], 'per_tensor', 8, 'asymmetric', 0.01, 7);
    const ref = quantizeWithReference(x, params);
    const values = quantizeValues(x, params);
    assert.equal(firstDiff(values.q, ref.q), null, `NaN at ${nanAt}`);
    assert.equal(values.clipped, ref.sums.clipped, `NaN at ${nanAt}`);
    const spec: QuantSpec = { bits: 4, scheme: 'asymmetric', granularity: 'per_group', axis: -1, groupSize: 32, calibration: 'minmax', percentile: 99.99 };
    // The fused per-group path: a group's range covers its outlier, so only the NaN (which
    // the kernel counts as clipped) makes a call clip.
    const shape = [(n - 7) / 32, 32];
    const xs = x.subarray(0, n - 7);
    const ints = quantizeIntegers(xs, shape, spec);
    const refG = quantizeWithReference(xs, calibrate(xs, shape, spec));
    assert.equal(firstDiff(ints.q, refG.q), null, `per group, NaN at ${nanAt}`);
    assert.equal(ints.clipped, refG.sums.clipped, `per group, NaN at ${nanAt}`);
  }
});

test('NaN, infinities and reconstructions past float32 take the reference path with the same results', () => {
  const x = data(1000, 'uniform', 3);
  x[17] = NaN;
  x[400] = Infinity;
  x[401] = -Infinity;
  for (const [bits, scheme, zp] of [[8, 'symmetric', 0], [8, 'asymmetric', 200], [16, 'asymmetric', 3]] as const) {
    const params = manualParams([1000], 'per_tensor', bits, scheme, 0.01, zp);
    const fast = quantizeWith(x, params);
    const ref = quantizeWithReference(x, params);
    assert.equal(firstDiff(fast.q, ref.q), null);
    assert.equal(JSON.stringify(fast.sums), JSON.stringify(ref.sums));
    const values = quantizeValues(x, params);
    assert.equal(firstDiff(values.q, ref.q), null);
    assert.equal(values.clipped, ref.sums.clipped);
  }
  // The fused calibrate-and-quantize path (per group along the last axis) on the same data.
  for (const scheme of ['symmetric', 'asymmetric'] as const) {
    const spec: QuantSpec = { bits: 8, scheme, granularity: 'per_group', axis: -1, groupSize: 100, calibration: 'minmax', percentile: 99.99 };
    const whole = quantize(x, [1000], spec);
    const ref = quantizeWithReference(x, calibrate(x, [1000], spec));
    assert.equal(firstDiff(whole.q, ref.q), null);
    assert.equal(JSON.stringify(whole.sums), JSON.stringify(ref.sums));
    const ints = quantizeIntegers(x, [1000], spec);
    assert.equal(firstDiff(ints.q, ref.q), null);
    assert.equal(ints.clipped, ref.sums.clipped);
  }
  // FLT_MAX / scale = 999.6 rounds up to 1000, and 1000 * scale overflows float32: the
  // reference saturates the reconstruction at FLT_MAX, the kernel hands the call back to it.
  const FLT_MAX = 3.4028234663852886e38;
  const big = Float32Array.of(FLT_MAX, -FLT_MAX, 1, 0, 1e38);
  const params = manualParams([5], 'per_tensor', 16, 'symmetric', Math.fround(FLT_MAX / 999.6), 0);
  const fast = quantizeWith(big, params);
  const ref = quantizeWithReference(big, params);
  assert.equal(ref.q[0], 1000);
  assert.equal(firstDiff(fast.q, ref.q), null);
  assert.equal(JSON.stringify(fast.sums), JSON.stringify(ref.sums));
  assert.ok(Number.isFinite(ref.sums.sumSq));
});

// 2.59e33 puts the scales on both sides of where the kernel stops clamping (FLT_MAX / 2^17).
test('dequantize = reference for every container, saturating at FLT_MAX', () => {
  for (const dtype of ['int2', 'uint2', 'int4', 'uint4', 'int8', 'uint8', 'int16', 'uint16'] as const) {
    const info = INT_DTYPE_INFO[dtype];
    const bits = info.storageBits;
    const signed = info.signed;
    const { qMin, qMax } = intRange(bits, signed);
    const u = random(bits + (signed ? 100 : 0));
    for (const shape of [[1], [37], [5, 300], [2 * CHUNK + 3]]) {
      const n = shape.reduce((a, b) => a * b, 1);
      const q = info.create(n);
      for (let i = 0; i < n; i++) q[i] = qMin + Math.floor(u() * (qMax - qMin + 1));
      for (const [granularity, scale] of [['per_tensor', 0.37], ['per_group', 1e-41], ['per_channel', 3e38], ['per_channel', 2.59e33]] as const) {
        if (granularity !== 'per_tensor' && shape.length < 2) continue;
        const params = manualParams(shape, granularity, bits, signed ? 'symmetric' : 'asymmetric', scale, signed ? 0 : Math.floor((qMax + 1) / 3));
        params.scale.forEach((_, p) => (params.scale[p] = scale * (1 + p / 7)));
        const fast = dequantizeWith(q, params);
        const ref = dequantizeWithReference(q, params);
        assert.ok(bytesOf(fast).equals(bytesOf(ref)), `${dtype} [${shape}] ${granularity}: ${firstDiff(fast, ref)}`);
        const inArena = dequantizeWith(resident(q, 2), params);
        assert.ok(bytesOf(inArena).equals(bytesOf(ref)), `in an arena: ${dtype} [${shape}] ${granularity}: ${firstDiff(inArena, ref)}`);
        // An output in the arena is written by the kernel directly, with or without the input there.
        const out = resident(new Float32Array(q.length).fill(NaN), ARENA_BYTES / 2 + 4);
        for (const input of [q, resident(q, 2)]) {
          out.fill(NaN);
          dequantizeWith(input, params, out);
          assert.ok(bytesOf(out).equals(bytesOf(ref)), `output in an arena: ${dtype} [${shape}] ${granularity}: ${firstDiff(out, ref)}`);
        }
      }
    }
  }
});

test('pack and unpack = reference for 2- and 4-bit containers at every length', () => {
  for (const dtype of ['int2', 'uint2', 'int4', 'uint4'] as const) {
    const info = INT_DTYPE_INFO[dtype];
    const { qMin, qMax } = intRange(info.storageBits, info.signed);
    const u = random(info.storageBits * 3 + (info.signed ? 1 : 0));
    for (const n of [0, 1, 31, 32, 33, 63, 64, 65, 200, 4 * CHUNK + 77, 9 * CHUNK + 1]) {
      const q = info.create(n);
      for (let i = 0; i < n; i++) q[i] = qMin + Math.floor(u() * (qMax - qMin + 1));
      const packed = pack(q, dtype);
      assert.ok(bytesOf(packed).equals(bytesOf(packReference(q, dtype))), `${dtype} pack n=${n}`);
      assert.ok(bytesOf(unpack(packed, n, dtype)).equals(bytesOf(unpackReference(packed, n, dtype))), `${dtype} unpack n=${n}`);
      assert.ok(bytesOf(pack(resident(q, 1), dtype)).equals(bytesOf(packed)), `in an arena: ${dtype} pack n=${n}`);
      assert.ok(bytesOf(unpack(resident(packed, 3), n, dtype)).equals(bytesOf(unpackReference(packed, n, dtype))), `in an arena: ${dtype} unpack n=${n}`);
    }
  }
});

test('an output array of another container receives the same values', () => {
  const x = data(1000, 'uniform', 9);
  for (const scheme of ['symmetric', 'asymmetric'] as const) {
    const spec: QuantSpec = { bits: 4, scheme, granularity: 'per_tensor', axis: 0, groupSize: 1, calibration: 'minmax', percentile: 99.99 };
    const params = calibrate(x, [1000], spec);
    const ref = quantizeWithReference(x, params);
    const wide = scheme === 'symmetric' ? new Int16Array(1000) : new Uint16Array(1000);
    const got = quantizeWith(x, params, wide);
    assert.equal(got.q, wide);
    assert.equal(firstDiff(wide, ref.q), null);
    assert.equal(firstDiff(quantizeValues(x, params, wide).q, ref.q), null);
  }
});

test('a tensor in an arena runs on the arena\'s kernels, anything else on the thread\'s', () => {
  const x = resident(new Float32Array([1, 2, 3]));
  assert.notEqual(kernelsFor(x), getKernels());
  assert.equal(kernelsFor(x).buffer, arena.buffer);
  assert.equal(kernelsFor(new Float32Array(3)), getKernels());
  assert.equal(createArena(-1), null);
  assert.equal(createArena(2 ** 32), null);
});

test('MSE and percentile calibration give the same parameters in an arena', () => {
  const x = data(3 * CHUNK + 11, 'uniform', 77);
  for (const calibration of ['mse', 'percentile'] as const) {
    for (const granularity of ['per_tensor', 'per_group'] as const) {
      const spec: QuantSpec = { bits: 4, scheme: 'asymmetric', granularity, axis: 0, groupSize: 1000, calibration, percentile: 99.9 };
      const plain = calibrate(x, [x.length], spec);
      const inArena = calibrate(resident(x, 8), [x.length], spec);
      assert.equal(firstDiff(inArena.scale, plain.scale), null, `${calibration} ${granularity} scale`);
      assert.equal(firstDiff(inArena.zeroPoint, plain.zeroPoint), null, `${calibration} ${granularity} zero point`);
    }
  }
});

test('outputs go beside an arena tensor while there is room, then into ordinary arrays', () => {
  // assert.ok on identities: a failing equal() would print the 48 MiB buffers.
  const x = resident(data(1000, 'uniform', 3));
  const spec: QuantSpec = { bits: 8, scheme: 'asymmetric', granularity: 'per_tensor', axis: 0, groupSize: 1, calibration: 'minmax', percentile: 99.99 };
  const { q } = quantize(x, [1000], spec);
  assert.ok(q.buffer === arena.buffer, 'q in the arena');
  assert.equal(q.byteOffset, FREE);
  const four = pack(quantize(x, [1000], { ...spec, bits: 4 }).q, 'uint4');
  assert.ok(four.buffer === arena.buffer, 'packed bytes in the arena');
  assert.ok(arenaAlloc(x, arena.buffer.byteLength) === null, 'more than the arena has');
  assert.ok(arenaAlloc(new Float32Array(4), 16) === null, 'no arena');
  const room = arena.buffer.byteLength - top[0]! - 64;
  assert.equal(arenaAlloc(x, room)?.length, room);
  assert.ok(quantize(x, [1000], spec).q.buffer !== arena.buffer, 'no room left: q outside');
  resetArena();
});

test('MSE candidates made by the kernel are paramsFromRange(shrinkRange(full, r)) exactly', () => {
  // One value per pass: the kernel's sum is then its single term, equal to sumSquaredError's
  // bit for bit, and any difference in a candidate's scale or zero point shows in it.
  const u = random(99);
  for (let t = 0; t < 300; t++) {
    const bits = 2 + Math.floor(u() * 15);
    const scheme: Scheme = u() < 0.5 ? 'symmetric' : 'asymmetric';
    const p = { bits, scheme, ...intRange(bits, scheme === 'symmetric') };
    const a = Math.fround((u() * 2 - 1) * 10 ** (u() * 8 - 4));
    const b = Math.fround((u() * 2 - 1) * 10 ** (u() * 8 - 4));
    const alpha = Math.max(Math.abs(a), Math.abs(b));
    const full = scheme === 'symmetric' ? { lo: -alpha, hi: alpha } : { lo: Math.min(a, b), hi: Math.max(a, b) };
    const rs = [(1 + Math.floor(u() * 128)) / 128, u(), 1, 1 / 8192];
    for (const v of [Math.fround(full.hi * 0.999), Math.fround(full.lo * 0.7), Math.fround(full.hi * u())]) {
      const x = Float32Array.of(v);
      const want = rs.map((r) => {
        const c = paramsFromRange(shrinkRange(full, r), p);
        return sumSquaredError(x, c.scale, c.zeroPoint, p.qMin, p.qMax);
      });
      assert.deepEqual(squaredErrors(x, { full, rs, p }), want, `${JSON.stringify(p)} ${JSON.stringify(full)} v=${v}`);
    }
  }
});

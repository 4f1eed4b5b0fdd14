// Replays the NumPy vectors for given scales and zero points (test/fixtures/given/given.json,
// written by test/fixtures/generate_given.py from the ONNX QuantizeLinear / DequantizeLinear
// formulas) against the core: the kernels' path and the TypeScript reference, bit for bit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { givenParams } from '../../src/core/given.js';
import { dequantizeWith, intParamsOf, planParams, quantizeValues, quantizeWith } from '../../src/core/quantize.js';
import { KERNEL_SUM_REL, sumsDiffer } from './sums-close.js';
import { quantizeWithReference, dequantizeWithReference } from '../../src/core/reference/quantize.js';
import { reportFromSums } from '../../src/core/metrics.js';
import { isQuantError } from '../../src/errors.js';
import { f32FromHex, loadGivenCases, specOfCase } from '../fixtures/given/load.js';

const cases = loadGivenCases();

function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): string | null {
  if (a.length !== b.length) return `length ${a.length} !== ${b.length}`;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return `[${i}] ${a[i]} !== ${b[i]}`;
  return null;
}

test('the fixture covers what it claims: every container, each granularity, ties, saturation, NaN and ±Inf, a partial block', () => {
  assert.deepEqual(new Set(cases.map((c) => c.dtype)), new Set(['int2', 'uint2', 'int4', 'uint4', 'int8', 'uint8', 'int16', 'uint16']));
  assert.deepEqual(new Set(cases.map((c) => c.granularity)), new Set(['per_tensor', 'per_channel', 'per_group']));
  assert.ok(cases.some((c) => c.granularity === 'per_group' && c.shape.at(c.axis)! % c.group_size! !== 0), 'a partial last block');
  assert.ok(cases.some((c) => !c.finite));
  assert.ok(cases.every((c) => c.clipped >= 0) && cases.some((c) => c.clipped > 0));
});

for (const c of cases) {
  test(`given parameters = NumPy's QuantizeLinear / DequantizeLinear: ${c.name}`, () => {
    const x = f32FromHex(c.x_bits);
    const params = givenParams(c.shape, specOfCase(c), { data: f32FromHex(c.scale_bits), shape: c.scale_shape }, { data: c.zero_point, shape: c.scale_shape });
    assert.equal(params.dtype, c.dtype);
    const fast = quantizeWith(x, params);
    assert.equal(firstDiff(fast.q, c.q), null, 'kernel path vs NumPy');
    const ref = quantizeWithReference(x, params);
    assert.equal(firstDiff(ref.q, c.q), null, 'reference vs NumPy');
    assert.equal(firstDiff(quantizeValues(x, params).q, c.q), null, 'integers only');
    const report = reportFromSums(fast.sums);
    assert.equal(report.clipped, c.clipped);
    assert.equal(report.max_error, c.max_error);
    // The kernels' sums are within KERNEL_SUM_REL of float64 (sums-close.ts).
    assert.ok(Math.abs(report.mse - c.mse) <= KERNEL_SUM_REL * Math.max(c.mse, 1e-300), `mse ${report.mse} vs ${c.mse}`);
    assert.equal(report.non_finite, c.non_finite > 0 ? c.non_finite : undefined);
    const dq = f32FromHex(c.dq_bits);
    assert.equal(firstDiff(dequantizeWith(fast.q, params), dq), null, 'dequantize vs NumPy');
    assert.equal(firstDiff(dequantizeWithReference(fast.q, params), dq), null, 'dequantize reference vs NumPy');
  });
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(isQuantError(err), String(err));
    return `${err.code}: ${err.message}`;
  }
  return 'no error';
}

test('bad given parameters are 400s that name the value, the index and the shape expected', () => {
  const spec = { bits: 8, scheme: 'symmetric', granularity: 'per_channel', axis: 1, groupSize: 128 } as const;
  const shape = [2, 3];
  const s = (data: number[], sh: number[] | 'flat' = [data.length]) => ({ data, shape: sh });
  assert.match(code(() => givenParams(shape, spec, s([0.1, 0, 0.2]))), /QUANT_ERR_OPTION: scale\[1\] must be a positive finite float32, got: 0/);
  assert.match(code(() => givenParams(shape, spec, s([0.1, -1, 0.2]))), /scale\[1\] .* got: -1/);
  assert.match(code(() => givenParams(shape, spec, s([0.1, NaN, 0.2]))), /scale\[1\] .* got: NaN/);
  assert.match(code(() => givenParams(shape, spec, s([0.1, Infinity, 0.2]))), /scale\[1\] .* got: Infinity/);
  assert.match(code(() => givenParams(shape, spec, s([0.1, 1e-50, 0.2]))), /scale\[1\] .* 1e-50 \(0 as a float32\)/);
  assert.match(code(() => givenParams(shape, spec, s([0.1, 0.2]))), /scale has shape \[2\]; granularity per_channel on axis 1 of a \[2, 3\] tensor needs shape \[3\]/);
  assert.match(code(() => givenParams(shape, spec, s([0.1], []))), /needs shape \[3\] \(a single number is a per_tensor scale: set granularity=per_tensor\)/);
  assert.match(code(() => givenParams(shape, { ...spec, granularity: 'per_tensor' }, s([0.1, 0.2, 0.3]))), /granularity per_tensor takes one number/);
  assert.match(code(() => givenParams(shape, { ...spec, granularity: 'per_group', axis: 1, groupSize: 2 }, s([1, 1, 1]))), /granularity per_group \(axis 1, group_size 2\) of a \[2, 3\] tensor needs shape \[2, 2\]/);
  assert.match(code(() => givenParams(shape, spec, s([0.1, 0.2], 'flat'))), /needs shape \[3\] \(3 comma-separated values in C order\)/);
  assert.match(code(() => givenParams(shape, spec, s([1, 1, 1]), s([0, 128, 0]))), /zero_point\[1\] must be an integer in \[-128, 127\] \(int8, bits=8, scheme=symmetric\), got: 128/);
  assert.match(code(() => givenParams(shape, spec, s([1, 1, 1]), s([0, 1.5, 0]))), /zero_point\[1\] .* got: 1.5/);
  assert.match(code(() => givenParams(shape, { ...spec, bits: 4, scheme: 'asymmetric' }, s([1, 1, 1]), s([0, -1, 0]))), /\[0, 15\] \(uint4/);
  assert.match(code(() => givenParams([2, 2, 3], { ...spec, granularity: 'per_group', groupSize: 2, axis: 1 }, s([1, 1, 1, 1, 1, 0.5], [2, 1, 3]), s([0, 0, 0, 0, 0, 200], [2, 1, 3]))), /zero_point\[1, 0, 2\]/);
  // A per-tensor scale may be a number or a one-element array, as in ONNX.
  assert.equal(givenParams(shape, { ...spec, granularity: 'per_tensor' }, s([0.5], [1])).scale[0], 0.5);
  assert.equal(code(() => givenParams(shape, spec, s([1, 2, 3], 'flat'))), 'no error');
});

test('given parameters on tensors that span many kernel calls agree with the reference (random scales, big and tiny)', () => {
  // Values and scales over many magnitudes: x / scale overflows, underflows and saturates.
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  const cases = [
    [[70000], 'per_tensor', 0, 1],
    [[300, 257], 'per_channel', 0, 1],
    [[257, 300], 'per_channel', 1, 1],
    [[64, 1000], 'per_group', -1, 48],
    [[100, 64, 3], 'per_group', 1, 7],
  ] as const;
  let clipped = 0;
  for (const [shape, granularity, axis, groupSize] of cases) {
    for (const [bits, scheme] of [[8, 'symmetric'], [4, 'asymmetric'], [16, 'asymmetric'], [2, 'symmetric']] as const) {
      const n = shape.reduce((a: number, b: number) => a * b, 1);
      const spec = { bits, scheme, granularity, axis, groupSize };
      const count = planParams(shape, granularity, axis, groupSize).count;
      const { qMin, qMax } = intParamsOf(bits, scheme);
      const x = new Float32Array(n).map(() => (rnd() - 0.5) * 10 ** Math.floor(rnd() * 8 - 4));
      const scale = Array.from({ length: count }, () => 10 ** (rnd() * 8 - 5));
      const zp = Array.from({ length: count }, () => qMin + Math.floor(rnd() * (qMax - qMin + 1)));
      const params = givenParams(shape, spec, { data: scale, shape: 'flat' }, { data: zp, shape: 'flat' });
      const fast = quantizeWith(x, params);
      const ref = quantizeWithReference(x, params);
      const label = `${shape} ${granularity} ${bits} ${scheme}`;
      assert.equal(firstDiff(fast.q, ref.q), null, label);
      assert.deepEqual(sumsDiffer(fast.sums, ref.sums), [], label);
      clipped += ref.sums.clipped;
      assert.equal(firstDiff(dequantizeWith(fast.q, params), dequantizeWithReference(fast.q, params)), null, label);
    }
  }
  assert.ok(clipped > 1000, `saturation exercised: ${clipped}`);
});

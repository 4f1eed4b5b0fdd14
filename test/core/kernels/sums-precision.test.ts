// The kernels' error sums (float32 lanes flushed to float64 in blocks, quantize.wat $spanr and
// $rowr) against the reference's float64 sums in element order, on data chosen to stress
// them: millions of elements, a dynamic range of 2^±60 inside one tensor, clipped values
// with errors far beyond the scale, every error the same inexact fraction of a step (so
// float32 roundings all lean one way), 16-bit containers. Each figure of the report must be
// within 1e-6 relative, and the kernels' own sums must be the ones used (kernelSumsPrecise),
// or the test would only compare the reference with itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { calibrate, intParamsOf, planParams, quantize, quantizeWith, type QuantParams, type QuantSpec } from '../../../src/core/quantize.js';
import { kernelSumsPrecise, quantizeKernel } from '../../../src/core/kernels/quantize.js';
import { quantizeWithReference } from '../../../src/core/reference/quantize.js';
import { INT_DTYPE_INFO } from '../../../src/core/dtypes.js';
import { reportFromSums, type ErrorReport } from '../../../src/core/metrics.js';
import { mulberry32 } from '../../../src/core/random.js';
import type { ErrorSums } from '../../../src/core/quantize.js';

const REL = 1e-6;

function uniform(seed: number): () => number {
  const next = mulberry32(seed);
  return () => next() / 4294967296;
}

function gaussian(n: number, seed: number): Float32Array {
  const u = uniform(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
  return x;
}

/** Magnitudes 2^[-60, 60], random signs, mixed element by element. */
function wide(n: number, seed: number): Float32Array {
  const u = uniform(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = (u() < 0.5 ? -1 : 1) * 2 ** (u() * 120 - 60);
  return x;
}

/** Gaussian, with one value in 1000 a hundred to a million times larger (clipped by percentile calibration). */
function outliers(n: number, seed: number): Float32Array {
  const x = gaussian(n, seed);
  const u = uniform(seed + 1);
  for (let i = 0; i < n; i += 997) x[i] = (u() < 0.5 ? -1 : 1) * 10 ** (2 + 4 * u());
  return x;
}

/** Every value (k + 0.3) steps of 1/64 for a random k: every |e| is 0.3 / 64 rounded the same way. */
function leaning(n: number, seed: number): Float32Array {
  const u = uniform(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = (Math.floor(u() * 200) - 100 + 0.3) / 64;
  return x;
}

/** Groups of 32 whose magnitudes differ by up to 2^±40 from group to group. */
function groupRange(rows: number, cols: number, seed: number): Float32Array {
  const x = gaussian(rows * cols, seed);
  const u = uniform(seed + 2);
  for (let g = 0; g < x.length; g += 32) {
    const f = 2 ** Math.round(u() * 80 - 40);
    for (let i = g; i < g + 32 && i < x.length; i++) x[i]! *= f;
  }
  return x;
}

function rel(a: number, b: number): number {
  return a === b ? 0 : Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b));
}

/**
 * The report's worst relative difference. snr_db is a logarithm (near 0 dB where clipping
 * dominates), so it is compared as the power ratio it stands for: 10^(snr_db / 10) within
 * 2e-6 (both its terms within 1e-6), i.e. snr_db within 10 log10(1 + 2e-6) ≈ 8.7e-6 dB.
 */
function reportRel(a: ErrorReport, b: ErrorReport): number {
  const snr = a.snr_db === null || b.snr_db === null ? (a.snr_db === b.snr_db ? 0 : Infinity) : rel(10 ** (a.snr_db / 10), 10 ** (b.snr_db / 10)) / 2;
  return Math.max(rel(a.mean_error, b.mean_error), rel(a.mse, b.mse), snr);
}

/** The kernels' sums for these parameters, as quantizeWith gets them before it decides. */
function kernelSums(x: Float32Array, params: QuantParams): ErrorSums {
  const q = INT_DTYPE_INFO[params.dtype].create(x.length);
  return quantizeKernel(x, params, q, true);
}

interface Case {
  name: string;
  x: Float32Array;
  shape: number[];
  spec: QuantSpec;
}

const base: QuantSpec = { bits: 8, scheme: 'symmetric', granularity: 'per_tensor', axis: 0, groupSize: 32, calibration: 'minmax', percentile: 99.99 };
const M = 1 << 22; // 4M elements: 64 staged calls, 32K blocks per lane accumulator
const CASES: Case[] = [
  { name: 'Gaussian, 4M elements, per tensor', x: gaussian(M, 1), shape: [M], spec: base },
  { name: 'magnitudes 2^±60 in one tensor', x: wide(1 << 20, 2), shape: [1 << 20], spec: base },
  { name: 'magnitudes 2^±60, int16', x: wide(1 << 20, 3), shape: [1 << 20], spec: { ...base, bits: 16 } },
  { name: 'outliers clipped by percentile 99.9, 4M elements', x: outliers(M, 4), shape: [M], spec: { ...base, calibration: 'percentile', percentile: 99.9 } },
  { name: 'outliers clipped, uint8 asymmetric per channel along the last axis', x: outliers(1 << 20, 5), shape: [256, 4096], spec: { ...base, scheme: 'asymmetric', granularity: 'per_channel', axis: -1, calibration: 'percentile', percentile: 99 } },
  { name: 'every error the same fraction of a step, 4M elements', x: leaning(M, 6), shape: [M], spec: base },
  { name: 'every error the same fraction of a step, per channel axis 0', x: leaning(1 << 20, 7), shape: [1024, 1024], spec: { ...base, granularity: 'per_channel', axis: 0 } },
  { name: 'groups of 32 with scales 2^±40 apart, along the last axis', x: groupRange(512, 2048, 8), shape: [512, 2048], spec: { ...base, bits: 4, scheme: 'asymmetric', granularity: 'per_group', axis: -1 } },
  { name: 'groups of 32 with scales 2^±40 apart, along axis 0', x: groupRange(2048, 512, 9), shape: [2048, 512], spec: { ...base, bits: 4, granularity: 'per_group', axis: 0 } },
  { name: 'MSE calibration per group, clipped', x: outliers(1 << 20, 10), shape: [1024, 1024], spec: { ...base, bits: 4, granularity: 'per_group', axis: -1, groupSize: 128, calibration: 'mse' } },
];

for (const c of CASES) {
  test(`kernel error sums within 1e-6 of float64: ${c.name}`, () => {
    const params = calibrate(c.x, c.shape, c.spec);
    const ref = quantizeWithReference(c.x, params);
    const fast = kernelSums(c.x, params);
    assert.ok(kernelSumsPrecise(fast), 'the kernels\' sums are used, not the reference\'s');
    assert.equal(fast.clipped, ref.sums.clipped);
    assert.equal(fast.maxError, ref.sums.maxError, 'max_error exact');
    for (const key of ['sumAbs', 'sumSq', 'sumX2'] as const) {
      assert.ok(rel(fast[key], ref.sums[key]) <= REL, `${key} ${fast[key]} vs ${ref.sums[key]}: ${rel(fast[key], ref.sums[key])}`);
    }
    const worst = reportRel(reportFromSums(fast), reportFromSums(ref.sums));
    assert.ok(worst <= REL, `report ${worst}`);
    // quantize() (the service's path: fused where it applies) holds the same bound.
    const whole = quantize(c.x, c.shape, c.spec);
    assert.ok(reportRel(reportFromSums(whole.sums), reportFromSums(ref.sums)) <= REL, 'quantize()');
    assert.equal(whole.sums.maxError, ref.sums.maxError);
    if (c.spec.calibration === 'minmax') assert.ok(c.spec.granularity !== 'per_tensor' || whole.sums.clipped === 0);
    else assert.ok(ref.sums.clipped > 0, 'the case clips values');
  });
}

test('values whose squares leave float32\'s normal range take the reference, with its exact sums', () => {
  for (const scale of [1e-21, 1e-30, 1e-40]) {
    const x = gaussian(50_000, 11).map((v) => v * scale);
    const spec: QuantSpec = { ...base, granularity: 'per_channel', axis: 0 };
    const params = calibrate(x, [50, 1000], spec);
    assert.equal(kernelSumsPrecise(kernelSums(x, params)), false, `scale ${scale}`);
    assert.deepEqual(quantizeWith(x, params).sums, quantizeWithReference(x, params).sums);
  }
  // All zeros: max_error 0, and the x^2 sum cannot be told from an underflow: the reference.
  const zeros = new Float32Array(10_000);
  const p0 = calibrate(zeros, [10_000], base);
  assert.deepEqual(quantizeWith(zeros, p0).sums, quantizeWithReference(zeros, p0).sums);
});

test('an error sum of zero with a nonzero max_error is not taken as exact', () => {
  // One element's error 2^-100 (its square underflows float32), every other error exactly 0.
  const x = new Float32Array(4096).fill(1);
  x[7] = 2 ** -100;
  const ip = intParamsOf(8, 'symmetric');
  const params: QuantParams = { ...ip, plan: planParams([4096], 'per_tensor', 0, 1), scale: Float32Array.of(1), zeroPoint: Int32Array.of(0) };
  const ref = quantizeWithReference(x, params).sums;
  assert.ok(ref.sumSq > 0 && ref.maxError === 2 ** -100);
  assert.equal(kernelSumsPrecise(kernelSums(x, params)), false);
  assert.deepEqual(quantizeWith(x, params).sums, ref);
});

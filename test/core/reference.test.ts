// Replays the NumPy reference vectors (test/fixtures/reference.json, written by
// test/fixtures/generate_reference.py from the formulas) against the core, bit for bit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

import { quantize, quantizeWith, dequantizeWith, type QuantSpec, type QuantParams } from '../../src/core/quantize.js';
import { reportFromSums, errorSums, type ErrorReport } from '../../src/core/metrics.js';
import { pack, unpack } from '../../src/core/pack.js';
import type { IntDType } from '../../src/core/dtypes.js';
import { percentileOf } from '../../src/core/calibrate.js';
import { KERNEL_SUM_REL, reportsDiffer } from './sums-close.js';

interface FixtureCase {
  id: string;
  input: string;
  spec: QuantSpec;
  dtype: IntDType;
  qMin: number;
  qMax: number;
  paramShape: number[];
  scale: number[];
  zeroPoint: number[];
  q: number[];
  packed: string;
  report: ErrorReport;
}

interface FixturePercentiles {
  input: string;
  abs: boolean;
  p: number[];
  values: number[];
}

interface Fixture {
  numpy: string;
  inputs: Record<string, { shape: number[]; data: number[] }>;
  cases: FixtureCase[];
  percentiles: FixturePercentiles[];
}

const fixture = JSON.parse(readFileSync(resolve(process.cwd(), 'test/fixtures/reference.json'), 'utf8')) as Fixture;

/** Relative closeness for float64 sums whose summation order differs (NumPy sums pairwise). */
function close(actual: number, expected: number, rel: number, abs = 0): boolean {
  if (actual === expected) return true;
  return Math.abs(actual - expected) <= Math.max(abs, rel * Math.max(Math.abs(actual), Math.abs(expected)));
}

function firstDiffs(actual: ArrayLike<number>, expected: ArrayLike<number>, limit = 5): string[] {
  const out: string[] = [];
  if (actual.length !== expected.length) out.push(`length ${actual.length} !== ${expected.length}`);
  const n = Math.min(actual.length, expected.length);
  for (let i = 0; i < n && out.length < limit; i++) {
    if (actual[i] !== expected[i]) out.push(`[${i}] ${actual[i]} !== ${expected[i]}`);
  }
  return out;
}

/** Every mismatch of one case, as readable lines (empty when the case matches). */
function checkCase(c: FixtureCase): string[] {
  const input = fixture.inputs[c.input];
  assert.ok(input, `missing input ${c.input}`);
  const x = Float32Array.from(input.data);
  // The JSON numbers are float32 values: parsing must not have changed any of them.
  assert.deepEqual(Array.from(x), input.data, `${c.input}: data does not round-trip to float32`);
  const problems: string[] = [];
  const say = (what: string, lines: string[]) => {
    if (lines.length) problems.push(`${what}: ${lines.join('; ')}`);
  };

  const { params, q, sums } = quantize(x, input.shape, c.spec);
  if (params.dtype !== c.dtype) problems.push(`dtype ${params.dtype} !== ${c.dtype}`);
  if (params.qMin !== c.qMin || params.qMax !== c.qMax) problems.push(`range [${params.qMin}, ${params.qMax}] !== [${c.qMin}, ${c.qMax}]`);
  say('paramShape', firstDiffs(params.plan.paramShape, c.paramShape));
  say('scale', firstDiffs(params.scale, c.scale));
  say('zeroPoint', firstDiffs(params.zeroPoint, c.zeroPoint));
  say('q', firstDiffs(q, c.q));

  // Quantization alone, with the reference's own parameters: separates a calibration
  // mismatch from a rounding/clipping one.
  const refParams: QuantParams = { ...params, scale: Float32Array.from(c.scale), zeroPoint: Int32Array.from(c.zeroPoint) };
  const alone = quantizeWith(x, refParams);
  say('q from the reference scale/zero point', firstDiffs(alone.q, c.q));

  const hex = Buffer.from(pack(q, params.dtype)).toString('hex');
  if (hex !== c.packed) problems.push(`packed ${hex.slice(0, 40)}… !== ${c.packed.slice(0, 40)}…`);
  say('unpack(reference bytes)', firstDiffs(unpack(Buffer.from(c.packed, 'hex'), c.q.length, c.dtype), c.q));

  const r = reportFromSums(sums);
  const e = c.report;
  const rep: string[] = [];
  if (r.max_error !== e.max_error) rep.push(`max_error ${r.max_error} !== ${e.max_error}`);
  // The kernels' sums are within KERNEL_SUM_REL of float64 (sums-close.ts); snr_db moves by
  // at most 10 log10(1 + 2 KERNEL_SUM_REL) dB with them.
  if (!close(r.mean_error, e.mean_error, KERNEL_SUM_REL)) rep.push(`mean_error ${r.mean_error} vs ${e.mean_error}`);
  if (!close(r.mse, e.mse, KERNEL_SUM_REL)) rep.push(`mse ${r.mse} vs ${e.mse}`);
  if (e.snr_db === null || r.snr_db === null) {
    if (r.snr_db !== e.snr_db) rep.push(`snr_db ${r.snr_db} vs ${e.snr_db}`);
  } else if (!close(r.snr_db, e.snr_db, 0, 10 * Math.log10(1 + 2 * KERNEL_SUM_REL) + 1e-11)) {
    rep.push(`snr_db ${r.snr_db} vs ${e.snr_db}`);
  }
  if (r.clipped !== e.clipped) rep.push(`clipped ${r.clipped} !== ${e.clipped}`);
  if (r.clipped_fraction !== e.clipped_fraction) rep.push(`clipped_fraction ${r.clipped_fraction} !== ${e.clipped_fraction}`);
  say('report', rep);

  // The report rebuilt from dequantizeWith must be the one quantize gathered (up to the order
  // of the float64 sums, see sums-close.ts).
  const again = reportFromSums(errorSums(x, dequantizeWith(q, params), sums.clipped));
  say('report from dequantizeWith', reportsDiffer(again, r, x.length));
  return problems;
}

test('the fixture is the one generate_reference.py writes', () => {
  assert.ok(fixture.cases.length > 1000, `only ${fixture.cases.length} cases`);
  const seen = (pick: (c: FixtureCase) => unknown) => new Set(fixture.cases.map(pick));
  assert.deepEqual([...seen((c) => c.spec.bits)].sort((a, b) => Number(a) - Number(b)), [2, 3, 4, 5, 8, 12, 16]);
  assert.deepEqual([...seen((c) => c.spec.scheme)].sort(), ['asymmetric', 'symmetric']);
  assert.deepEqual([...seen((c) => c.spec.granularity)].sort(), ['per_channel', 'per_group', 'per_tensor']);
  assert.deepEqual([...seen((c) => c.dtype)].sort(), ['int16', 'int2', 'int4', 'int8', 'uint16', 'uint2', 'uint4', 'uint8']);
  assert.ok(fixture.cases.some((c) => c.report.snr_db === null));
  assert.ok(fixture.cases.some((c) => c.report.clipped > 0));
});

// One test per input tensor; each runs every case on it and lists all the mismatches.
const byInput = new Map<string, FixtureCase[]>();
for (const c of fixture.cases) {
  const list = byInput.get(c.input) ?? [];
  list.push(c);
  byInput.set(c.input, list);
}
for (const [input, cases] of byInput) {
  test(`reference ${input} (${cases.length} cases)`, () => {
    const failures: string[] = [];
    for (const c of cases) {
      const problems = checkCase(c);
      if (problems.length) failures.push(`${c.id}\n    ${problems.join('\n    ')}`);
    }
    assert.equal(failures.length, 0, `${failures.length}/${cases.length} cases differ from NumPy:\n  ${failures.slice(0, 8).join('\n  ')}`);
  });
}

test('percentileOf is numpy.percentile (linear) on float32 data, bit for bit', () => {
  const failures: string[] = [];
  for (const set of fixture.percentiles) {
    const data = Float32Array.from(fixture.inputs[set.input]!.data, (v) => (set.abs ? Math.abs(v) : v));
    set.p.forEach((p, i) => {
      const got = percentileOf(data.slice(), p); // percentileOf reorders its argument
      if (got !== set.values[i]) failures.push(`${set.abs ? 'abs ' : ''}${set.input} p=${p}: ${got} !== ${set.values[i]}`);
    });
  }
  assert.ok(fixture.percentiles.length > 20);
  assert.deepEqual(failures, []);
});

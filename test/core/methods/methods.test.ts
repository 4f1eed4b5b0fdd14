// The data-free methods against the NumPy re-implementation (test/fixtures/low_bit/
// generate.py), and their quality on Gaussian data against an exhaustive search.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { minmaxRange, paramsFromRange } from '../../../src/core/calibrate.js';
import { reportFromSums } from '../../../src/core/metrics.js';
import { shrinkLp } from '../../../src/core/methods/hqq.js';
import { lsqGroup } from '../../../src/core/methods/lsq.js';
import { lsqAcceptBelow } from '../../../src/core/methods/refit-f32.js';
import type { QuantMethod } from '../../../src/core/methods/index.js';
import { intParamsOf, quantize, type QuantSpec } from '../../../src/core/quantize.js';
import type { Scheme } from '../../../src/core/calibrate.js';
import { clamp, f32, rint } from '../../../src/core/round.js';
import { randn } from '../../onnx/models.js';

interface MethodCase {
  name: string;
  method: 'lsq' | 'hqq';
  bits: number;
  scheme: Scheme;
  x: number[];
  scale: number;
  zero_point: number;
  q: number[];
}

const fixture = JSON.parse(readFileSync(resolve(process.cwd(), 'test/fixtures/low_bit/low_bit.json'), 'utf8')) as { methods: MethodCase[] };

const spec = (bits: number, scheme: Scheme, method: QuantMethod, granularity: QuantSpec['granularity'] = 'per_tensor', groupSize = 1): QuantSpec => ({
  bits, scheme, granularity, axis: -1, groupSize, calibration: 'minmax', percentile: 99.99, method,
});

test('lsq and hqq give the NumPy reference scale, zero point and integers on every case', () => {
  assert.ok(fixture.methods.length >= 80);
  for (const c of fixture.methods) {
    const x = Float32Array.from(c.x);
    const { params, q } = quantize(x, [x.length], spec(c.bits, c.scheme, c.method));
    const what = `${c.method} ${c.scheme} ${c.bits}-bit ${c.name}`;
    assert.equal(params.scale[0], Math.fround(c.scale), `${what}: scale`);
    assert.equal(params.zeroPoint[0], c.zero_point, `${what}: zero point`);
    assert.deepEqual(Array.from(q), c.q, `${what}: integers`);
  }
});

test('the methods fit each group on its own: per group and per channel equal the groups quantized one by one', () => {
  const x = randn(8 * 64, 3);
  for (const method of ['lsq', 'hqq'] as const) {
    for (const scheme of ['asymmetric', 'symmetric'] as const) {
      const grouped = quantize(x, [8, 64], spec(4, scheme, method, 'per_group', 16)).params;
      const channels = quantize(x, [8, 64], { ...spec(4, scheme, method, 'per_channel'), axis: 0 }).params;
      for (let r = 0; r < 8; r++) {
        const row = x.subarray(r * 64, r * 64 + 64);
        const one = quantize(row, [64], spec(4, scheme, method)).params;
        assert.equal(channels.scale[r], one.scale[0]);
        assert.equal(channels.zeroPoint[r], one.zeroPoint[0]);
        for (let b = 0; b < 4; b++) {
          const g = quantize(row.subarray(b * 16, b * 16 + 16), [16], spec(4, scheme, method)).params;
          assert.equal(grouped.scale[r * 4 + b], g.scale[0]);
          assert.equal(grouped.zeroPoint[r * 4 + b], g.zeroPoint[0]);
        }
      }
    }
  }
});

test('shrinkLp is the generalised soft threshold sign(e)·max(|e| − |e|^(p−1)/β, 0)', () => {
  assert.equal(shrinkLp(0, 10, 0.7), 0);
  assert.equal(shrinkLp(2, 10, 1), 2 - 0.1);
  assert.equal(shrinkLp(-2, 10, 0.7), -(2 - 2 ** (0.7 - 1) / 10));
  // Small errors are shrunk to exactly 0 (|e|^0.7 < 1/β).
  assert.equal(shrinkLp(0.03, 10, 0.7), 0);
});

/** Sum of squared errors of one group under (scale, zp) in the stored form. */
function sse(x: Float32Array, scale: number, zp: number, qMin: number, qMax: number): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) {
    const q = clamp(rint(f32(x[i]! / scale)) + zp, qMin, qMax);
    const e = x[i]! - f32((q - zp) * scale);
    s += e * e;
  }
  return s;
}

/**
 * The best uniform grid of a group by exhaustive search: every zero point, and scales from
 * 0.4× to 1.2× the min-max scale in steps of 1/1600 of it.
 */
function bestGrid(x: Float32Array, bits: number, scheme: Scheme): number {
  const p = intParamsOf(bits, scheme);
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of x) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const range = scheme === 'symmetric' ? { lo: -Math.max(-lo, hi), hi: Math.max(-lo, hi) } : { lo, hi };
  const s0 = paramsFromRange(range, p).scale;
  let best = Infinity;
  const zps = scheme === 'symmetric' ? [0] : Array.from({ length: p.qMax + 1 }, (_, i) => i);
  for (let k = 0; k <= 1280; k++) {
    const s = f32(s0 * (0.4 + k / 1600));
    for (const zp of zps) best = Math.min(best, sse(x, s, zp, p.qMin, p.qMax));
  }
  return best;
}

test('4-bit g32 on N(0, 1): lsq gains ≥ 0.3 dB over min-max rtn and is within 0.1 dB of the best uniform grid; hqq beats rtn', () => {
  const groups = 256;
  const x = randn(groups * 32, 2026);
  let x2 = 0;
  for (const v of x) x2 += v * v;
  for (const scheme of ['asymmetric', 'symmetric'] as const) {
    const snr = (method: QuantMethod) => reportFromSums(quantize(x, [groups, 32], spec(4, scheme, method, 'per_group', 32)).sums).snr_db!;
    const rtn = snr('rtn');
    const lsq = snr('lsq');
    const hqq = snr('hqq');
    let best = 0;
    for (let g = 0; g < groups; g++) best += bestGrid(x.subarray(g * 32, g * 32 + 32), 4, scheme);
    const grid = 10 * Math.log10(x2 / best);
    assert.ok(lsq - rtn >= 0.3, `${scheme}: lsq ${lsq.toFixed(3)} dB vs rtn ${rtn.toFixed(3)} dB`);
    assert.ok(grid - lsq <= 0.1, `${scheme}: lsq ${lsq.toFixed(3)} dB vs best grid ${grid.toFixed(3)} dB`);
    assert.ok(hqq > rtn, `${scheme}: hqq ${hqq.toFixed(3)} dB vs rtn ${rtn.toFixed(3)} dB`);
  }
});

test('no method is ever worse than rtn on a group, at any bit width', () => {
  const x = randn(64 * 32, 99);
  for (const bits of [2, 3, 4, 8]) {
    for (const scheme of ['asymmetric', 'symmetric'] as const) {
      const p = intParamsOf(bits, scheme);
      const base = quantize(x, [64, 32], spec(bits, scheme, 'rtn', 'per_group', 32)).params;
      for (const method of ['lsq', 'hqq'] as const) {
        const m = quantize(x, [64, 32], spec(bits, scheme, method, 'per_group', 32)).params;
        for (let g = 0; g < 64; g++) {
          const slice = x.subarray(g * 32, g * 32 + 32);
          const a = sse(slice, base.scale[g]!, base.zeroPoint[g]!, p.qMin, p.qMax);
          const b = sse(slice, m.scale[g]!, m.zeroPoint[g]!, p.qMin, p.qMax);
          assert.ok(b <= a, `${method} ${scheme} ${bits}-bit group ${g}: ${b} > ${a}`);
        }
      }
    }
  }
});

test('lsq is never worse than rtn by the exact error on groups where float32 scores are fragile (kernel and reference)', () => {
  // The result is judged by float32 scores with a rounding margin (refit-f32.ts lsqAcceptBelow):
  // values on a grid (rtn exact or nearly), near-constant groups, 8 bits (gains of a few
  // ulps), magnitudes whose squares leave float32's range, and groups one outlier dominates.
  const kinds: Record<string, (n: number, seed: number) => Float32Array> = {
    levels: (n, seed) => randn(n, seed).map((v) => Math.round(v * 4) / 4),
    nearConstant: (n, seed) => randn(n, seed, 1e-6).map((v) => 1 + v),
    tiny: (n, seed) => randn(n, seed, 1e-21),
    subnormalSquares: (n, seed) => randn(n, seed, 3e-20),
    huge: (n, seed) => randn(n, seed, 1e19),
    outlier: (n, seed) => randn(n, seed, 1e-3).map((v, i) => (i === 5 ? 40 : v)),
    gauss: (n, seed) => randn(n, seed),
  };
  let seed = 500;
  for (const [kind, make] of Object.entries(kinds)) {
    for (const n of [8, 32, 128]) {
      const groups = 16;
      const x = make(groups * n, seed++);
      for (const bits of [2, 4, 8]) {
        for (const scheme of ['asymmetric', 'symmetric'] as const) {
          const p = intParamsOf(bits, scheme);
          const base = quantize(x, [groups, n], spec(bits, scheme, 'rtn', 'per_group', n)).params;
          const kernel = quantize(x, [groups, n], spec(bits, scheme, 'lsq', 'per_group', n)).params;
          for (let g = 0; g < groups; g++) {
            const slice = x.subarray(g * n, g * n + n);
            const ref = lsqGroup(slice, minmaxRange(slice, scheme), p);
            const rtnErr = sse(slice, base.scale[g]!, base.zeroPoint[g]!, p.qMin, p.qMax);
            const what = `${kind} n=${n} ${bits}-bit ${scheme} group ${g}`;
            assert.equal(kernel.scale[g], ref.scale, `${what}: kernel and reference`);
            assert.equal(kernel.zeroPoint[g], ref.zeroPoint, `${what}: kernel and reference`);
            const err = sse(slice, ref.scale, ref.zeroPoint, p.qMin, p.qMax);
            assert.ok(err <= rtnErr, `${what}: ${err} > rtn ${rtnErr}`);
          }
        }
      }
    }
  }
});

test('lsqAcceptBelow: the margin grows with the group and nothing passes an overflowed rtn score', () => {
  assert.ok(lsqAcceptBelow(1, 32) < 1 && lsqAcceptBelow(1, 32) > 1 - 1e-5);
  assert.ok(lsqAcceptBelow(1, 4096) < lsqAcceptBelow(1, 32));
  assert.equal(lsqAcceptBelow(Infinity, 32), -Infinity);
  // An underflowed rtn score (0) admits nothing: the absolute part of the margin.
  assert.ok(lsqAcceptBelow(0, 32) < 0);
});

// hqq's power (methods/hqq-power.ts): within its stated bound of the exact a^(p−1), equal to
// the NumPy port (test/fixtures/low_bit/generate.py), and what it changes in hqq's results
// against the exact power (the exhaustive check over every float32 is scripts/hqq-power-bound.ts).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { minmaxRange, type Scheme } from '../../../src/core/calibrate.js';
import { HQQ_POWER_MAX_REL_ERROR, powApprox, powerConstants } from '../../../src/core/methods/hqq-power.js';
import { HQQ_DEFAULTS, hqqGroup, hqqTable, shrinkLp } from '../../../src/core/methods/hqq.js';
import { intParamsOf } from '../../../src/core/quantize.js';
import { f32 } from '../../../src/core/round.js';
import { randn } from '../../onnx/models.js';

const Y = HQQ_DEFAULTS.lpNorm - 1;
const C = powerConstants(Y);
const fixture = JSON.parse(readFileSync(resolve(process.cwd(), 'test/fixtures/low_bit/low_bit.json'), 'utf8')) as {
  hqq_power: { y: number; a: number[]; pow: number[] };
};

test('powApprox is within HQQ_POWER_MAX_REL_ERROR of a ** (p − 1) on sampled float32 from the threshold to FLT_MAX', () => {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  f[0] = 0.125;
  const lo = u[0]!;
  const hi = 0x7f7fffff;
  let worst = 0;
  let seed = 12345;
  for (let i = 0; i < 1 << 19; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    u[0] = i < 4096 ? lo + i : i < 8192 ? hi - (i - 4096) : lo + (seed % (hi - lo + 1));
    const a = f[0]!;
    const exact = a ** Y;
    const r = Math.abs(powApprox(a, C) - exact) / exact;
    assert.ok(r <= HQQ_POWER_MAX_REL_ERROR, `a = ${a}: relative error ${r}`);
    worst = Math.max(worst, r);
  }
  // an approximation, not the exact power rounded (that would be within 2^-24 = 6e-8)
  assert.ok(worst > 6e-8, `worst ${worst}`);
});

test('powApprox gives the NumPy port bit for bit', () => {
  const { y, a, pow } = fixture.hqq_power;
  assert.equal(y, Y);
  assert.ok(a.length >= 400);
  const c = powerConstants(y);
  for (let i = 0; i < a.length; i++) assert.equal(powApprox(f32(a[i]!), c), pow[i], `a = ${a[i]}`);
});

test("hqq's thresholds are float32 below which the exact shrink is 0 (the power is skipped only there)", () => {
  const table = hqqTable();
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let it = 0; it < HQQ_DEFAULTS.iters; it++) {
    const beta = table[2 * it]!;
    f[0] = table[2 * it + 1]!;
    u[0]! -= 1;
    assert.equal(shrinkLp(f[0]!, beta, HQQ_DEFAULTS.lpNorm), 0, `iteration ${it}: below the threshold`);
    assert.ok(table[2 * it + 1]! < 0.2 && table[2 * it + 1]! > 0.14);
  }
});

test('the approximate power against the exact one in hqq: equal parameters on most groups, the same SNR to 0.005 dB', () => {
  const exact = (a: number) => f32(a ** Y);
  for (const bits of [2, 4]) {
    for (const scheme of ['asymmetric', 'symmetric'] as Scheme[]) {
      for (const n of [32, 128]) {
        const groups = 128;
        const x = randn(groups * n, 5 + bits);
        const p = intParamsOf(bits, scheme);
        let same = 0;
        let e1 = 0;
        let e2 = 0;
        let x2 = 0;
        for (let g = 0; g < groups; g++) {
          const s = x.subarray(g * n, g * n + n);
          const range = minmaxRange(s, scheme);
          const a = hqqGroup(s, range, p);
          const b = hqqGroup(s, range, p, HQQ_DEFAULTS, exact);
          if (a.scale === b.scale && a.zeroPoint === b.zeroPoint) same++;
          for (const v of s) {
            const err = (pp: typeof a) => {
              const q = Math.min(p.qMax, Math.max(p.qMin, Math.round(v / pp.scale) + pp.zeroPoint));
              return (v - (q - pp.zeroPoint) * pp.scale) ** 2;
            };
            e1 += err(a);
            e2 += err(b);
            x2 += v * v;
          }
        }
        const what = `${bits}-bit ${scheme} g${n}`;
        assert.ok(same >= (bits === 2 ? 0.75 : 0.95) * groups, `${what}: ${same} of ${groups} groups equal`);
        assert.ok(Math.abs(10 * Math.log10(e2 / e1)) <= 0.005, `${what}: SNR approx vs exact ${10 * Math.log10(x2 / e1)} / ${10 * Math.log10(x2 / e2)}`);
      }
    }
  }
});

// quantize.wat $spanr8 does not test every vector for clipping: it reads a block's clipping
// off its largest |e| (a clipped element's |e| is at least s * (0.5 - 511 * 2^-24), an
// unclipped one's at most s/2 + 510 * 2^-24 * s) and counts only blocks at or above
// s * (0.5 - 2^-14) exactly. These tests put elements on both sides of the clip bounds and
// of the interior half-steps, a few float32 steps apart, for 8-bit containers of every
// width and both schemes, at scales across the range the screen is used for (2^-100 ..
// 2^100) and just outside it, and hold the kernels to the reference: every integer, the
// clipped count and max_error equal, the sums within 1e-6.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { intParamsOf, planParams, quantizeWith, type QuantParams } from '../../../src/core/quantize.js';
import { quantizeWithReference } from '../../../src/core/reference/quantize.js';
import { mulberry32 } from '../../../src/core/random.js';
import { sumsDiffer } from '../sums-close.js';

/** The float32 `steps` representable values away from v (v > 0 or v < 0, no zero crossing). */
function ulps(v: number, steps: number): number {
  const f = new Float32Array([v]);
  const i = new Int32Array(f.buffer);
  i[0] = i[0]! + (v < 0 ? -steps : steps);
  return f[0]!;
}

/** n values (a multiple of 8 plus a tail) around the bounds and half-steps of [lo, hi] at scale s. */
function edgeData(n: number, s: number, lo: number, hi: number, seed: number): Float32Array {
  const next = mulberry32(seed);
  const u = () => next() / 4294967296;
  const x = new Float32Array(n);
  const edges = [(hi + 0.5) * s, (lo - 0.5) * s, (hi - 0.5) * s, (lo + 0.5) * s, 0.5 * s, -0.5 * s, (hi + 1.5) * s, (lo - 3) * s];
  for (let i = 0; i < n; i++) {
    const r = u();
    if (r < 0.6) {
      // in range, away from the edges
      x[i] = (lo + (hi - lo) * u()) * s;
    } else {
      const e = edges[Math.floor(u() * edges.length)]!;
      x[i] = e === 0 ? 0 : ulps(e, Math.floor(u() * 9) - 4);
    }
  }
  return x;
}

function paramsOf(bits: number, scheme: 'symmetric' | 'asymmetric', n: number, s: number, zp: number): QuantParams {
  const ip = intParamsOf(bits, scheme);
  return { ...ip, plan: planParams([n], 'per_tensor', 0, 1), scale: new Float32Array([s]), zeroPoint: new Int32Array([zp]) };
}

const SCALES = [1, 0.037, 3.1e-5, 2 ** -100, 2 ** -99.5, 2 ** 100, 2 ** 99.5, 2 ** -101, 2 ** 101, 1.5e-38];

test('the clip screen: clipped counts, max_error and integers equal the reference at the clip bounds', () => {
  let clippedSeen = 0;
  for (const bits of [2, 4, 8]) {
    for (const scheme of ['symmetric', 'asymmetric'] as const) {
      const ip = intParamsOf(bits, scheme);
      const zps = scheme === 'symmetric' ? [0] : [ip.qMin, ip.qMax, Math.round((ip.qMin + ip.qMax) / 2)];
      for (const s0 of SCALES) {
        const s = Math.fround(s0);
        for (const zp of zps) {
          const n = 4096 + 5;
          const x = edgeData(n, s, ip.qMin - zp, ip.qMax - zp, bits * 1000 + zp + Math.round(Math.log2(s)));
          const params = paramsOf(bits, scheme, n, s, zp);
          const k = quantizeWith(x, params);
          const r = quantizeWithReference(x, params);
          const where = `${bits}-bit ${scheme} scale ${s} zp ${zp}`;
          assert.deepEqual(Array.from(k.q), Array.from(r.q), `${where}: integers`);
          assert.deepEqual(sumsDiffer(k.sums, r.sums), [], where);
          clippedSeen += r.sums.clipped;
        }
      }
    }
  }
  assert.ok(clippedSeen > 1000, `the data clips (${clippedSeen} clipped elements)`);
});

test('the clip screen: a block with one element just past a bound is counted', () => {
  // One clipped element among values that sit well inside: the block's max |e| alone flags it.
  for (const steps of [0, 1, 2, 3]) {
    const s = Math.fround(0.01);
    const n = 1024;
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = ((i % 200) - 100) * s;
    const at = 8 * 37 + 5;
    x[at] = ulps(127.5 * s, steps);
    const params = paramsOf(8, 'symmetric', n, s, 0);
    const k = quantizeWith(x, params);
    const r = quantizeWithReference(x, params);
    assert.equal(k.sums.clipped, r.sums.clipped, `${steps} steps past 127.5 s`);
    assert.deepEqual(sumsDiffer(k.sums, r.sums), []);
  }
});

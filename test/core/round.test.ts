import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';

import { rint, clamp, f32 } from '../../src/core/round.js';

const FC = { seed: 42, numRuns: 2000 };

/** Round half to even written from its definition (floor, then the distance to it). */
function rintOracle(x: number): number {
  if (!Number.isFinite(x) || Math.abs(x) >= 2 ** 52) return x;
  // rint is odd: work on |x|, where x - floor(x) is exact (floor(x) = 0 or x/2 ≤ floor(x) ≤ x).
  // Negating a zero result keeps numpy's sign: rint(-0.4) is -0.
  if (x < 0 || Object.is(x, -0)) return -rintOracle(-x);
  const f = Math.floor(x);
  const d = x - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

test('rint rounds ties to even', () => {
  const cases: Array<[number, number]> = [
    [0.5, 0],
    [1.5, 2],
    [2.5, 2],
    [3.5, 4],
    [4.5, 4],
    [-0.5, -0],
    [-1.5, -2],
    [-2.5, -2],
    [-3.5, -4],
    [126.5, 126],
    [127.5, 128],
    [-128.5, -128],
    [-127.5, -128],
    [32767.5, 32768],
    [65534.5, 65534],
    // The largest float32 ties (float32 has no fraction bits left from 2^23 on).
    [2 ** 23 - 0.5, 2 ** 23],
    [2 ** 23 - 1.5, 2 ** 23 - 2],
    [-(2 ** 23 - 0.5), -(2 ** 23)],
    // Ties past int32, where a `| 0` or `& 1` on the raw value would go wrong.
    [2 ** 31 + 0.5, 2 ** 31],
    [2 ** 31 + 1.5, 2 ** 31 + 2],
    [2 ** 32 + 0.5, 2 ** 32],
    [-(2 ** 33) - 1.5, -(2 ** 33) - 2],
    [2 ** 52 - 0.5, 2 ** 52],
    [2 ** 52 - 1.5, 2 ** 52 - 2],
  ];
  for (const [x, want] of cases) {
    assert.ok(Object.is(rint(x), want), `rint(${x}) = ${rint(x)}, want ${want}`);
  }
});

test('rint of non-ties, zeros, large and non-finite values', () => {
  const cases: Array<[number, number]> = [
    [0, 0],
    [-0, -0],
    [0.49999997, 0], // float32 just below 0.5
    [0.49999999999999994, 0], // double just below 0.5: Math.floor(x + 0.5) would give 1
    [-0.49999997, -0],
    [0.50000006, 1],
    [-0.50000006, -1],
    [1.4999999, 1],
    [2.4, 2],
    [2.6, 3],
    [-2.4, -2],
    [-2.6, -3],
    [1e-45, 0],
    [-1e-45, -0],
    [f32(1e30), f32(1e30)],
    [-f32(1e30), -f32(1e30)],
    [f32(3.4028234663852886e38), f32(3.4028234663852886e38)],
    [2 ** 53, 2 ** 53],
    [Infinity, Infinity],
    [-Infinity, -Infinity],
  ];
  for (const [x, want] of cases) {
    assert.ok(Object.is(rint(x), want), `rint(${x}) = ${rint(x)}, want ${want}`);
  }
  assert.ok(Number.isNaN(rint(NaN)));
});

test('rint matches round-half-to-even on every float32 value', () => {
  fc.assert(
    fc.property(fc.float({ noNaN: true }), (x) => {
      const want = rintOracle(x);
      assert.ok(Object.is(rint(x), want), `rint(${x}) = ${rint(x)}, want ${want}`);
    }),
    FC,
  );
});

test('rint matches round-half-to-even on doubles below 2^52 and on exact ties', () => {
  fc.assert(
    fc.property(fc.double({ min: -(2 ** 52), max: 2 ** 52, noNaN: true }), (x) => {
      assert.ok(Object.is(rint(x), rintOracle(x)), `rint(${x})`);
    }),
    FC,
  );
  fc.assert(
    fc.property(fc.integer({ min: -(2 ** 30), max: 2 ** 30 }), fc.integer({ min: 0, max: 21 }), (k, shift) => {
      // k * 2^shift + 0.5 is exact for |k| ≤ 2^30, shift ≤ 21.
      const x = k * 2 ** shift + 0.5;
      const r = rint(x);
      assert.equal(Math.abs(r - x), 0.5);
      assert.equal(Math.abs(r) % 2, 0, `rint(${x}) = ${r} is odd`);
      assert.ok(Object.is(r, rintOracle(x)), `rint(${x})`);
    }),
    FC,
  );
});

test('clamp saturates and f32 rounds to float32', () => {
  assert.equal(clamp(-129, -128, 127), -128);
  assert.equal(clamp(128, -128, 127), 127);
  assert.equal(clamp(5, -128, 127), 5);
  assert.equal(clamp(Infinity, 0, 255), 255);
  assert.equal(clamp(-Infinity, 0, 255), 0);
  assert.equal(f32(0.1), 0.10000000149011612);
  assert.equal(f32(1 / 3), new Float32Array([1 / 3])[0]);
});

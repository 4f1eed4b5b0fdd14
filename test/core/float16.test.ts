import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bfloat16ToFloat, floatsToHalves, floatToBfloat16, floatToHalf, halfToFloat } from '../../src/core/float16.js';

// float32 → float16/bfloat16 with round to nearest even, checked on every half and bfloat16
// value: each converts back to itself, each midpoint between neighbours goes to the one
// with an even last bit, and just off the midpoint to the nearer one.

function check(toFloat: (b: number) => number, fromFloat: (x: number) => number, what: string): void {
  const f32 = new Float32Array(1);
  for (let b = 0; b < 0x10000; b++) {
    const x = toFloat(b);
    if (Number.isNaN(x)) {
      assert.ok(Number.isNaN(toFloat(fromFloat(x))), `${what} NaN 0x${b.toString(16)}`);
      continue;
    }
    assert.equal(fromFloat(x), b, `${what} 0x${b.toString(16)} round trip`);
    // The midpoint to the next value up in magnitude (same sign), when both are finite.
    const next = toFloat(b + 1);
    if ((b & 0x7fff) >= 0x7bff || !Number.isFinite(next) || Number.isNaN(next) || (b & 0x7fff) === 0x7fff) continue;
    const mid = (x + next) / 2;
    f32[0] = mid;
    if (f32[0] !== mid) continue; // not representable in float32 (does not happen for these types)
    const even = (b & 1) === 0 ? b : b + 1;
    assert.equal(fromFloat(mid), even, `${what} midpoint above 0x${b.toString(16)} rounds to even`);
    const above = mid + (next - x) / 8;
    assert.equal(fromFloat(above), b + 1, `${what} just above the midpoint of 0x${b.toString(16)}`);
  }
}

describe('float16 / bfloat16 conversions', () => {
  it('float16: round trip, ties to even, overflow to Inf, subnormals', () => {
    check(halfToFloat, floatToHalf, 'float16');
    assert.equal(floatToHalf(65520), 0x7c00, '65520 is the midpoint past 65504: to Inf');
    assert.equal(floatToHalf(65519), 0x7bff);
    assert.equal(floatToHalf(2 ** -25), 0, 'half the smallest subnormal: ties to 0 (even)');
    assert.equal(floatToHalf(2 ** -25 * 1.0001), 1);
    assert.equal(floatToHalf(-Infinity), 0xfc00);
  });

  it('bfloat16: round trip and ties to even', () => {
    check(bfloat16ToFloat, floatToBfloat16, 'bfloat16');
    assert.equal(floatToBfloat16(1 + 2 ** -8), 0x3f80, '1 + half an ulp: ties to even (1)');
    assert.equal(floatToBfloat16(1 + 3 * 2 ** -8), 0x3f82, '1 + 1.5 ulp: ties to even (1 + 2 ulp)');
  });
});

describe('floatsToHalves', () => {
  it('is floatToHalf of each value (ties, subnormals, overflow, NaN, signed zeros)', () => {
    const x = new Float32Array([0, -0, 1, -1, 65504, 65520, 1e6, -1e6, 5.96e-8, 2.98e-8, 1e-10, NaN, Infinity, -Infinity, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 0.1, -3.14159]);
    const rand = new Float32Array(4096).map((_, i) => Math.sin(i * 12.9898) * 10 ** ((i % 17) - 9));
    for (const v of [x, rand]) assert.deepEqual(floatsToHalves(v), Uint16Array.from(v, floatToHalf));
  });
});

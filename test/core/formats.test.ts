// FP8 (E4M3FN, E5M2) and NF4 against the NumPy reference (test/fixtures/low_bit/generate.py:
// a nearest-value search over each format's table, not bit arithmetic), and the special
// values of the ONNX Cast table with saturate=1.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { FP8, FP8_TYPES, fp8Table, fromFp8, quantizeFp8, toFp8, type Fp8Type } from '../../src/core/fp8.js';
import { NF4_LEVELS, nf4Code, packNf4, quantizeNf4 } from '../../src/core/nf4.js';
import { planParams } from '../../src/core/quantize.js';
import { reportFromSums } from '../../src/core/metrics.js';
import { randn } from '../onnx/models.js';

type Num = number | 'nan' | 'inf' | '-inf';
const num = (v: Num): number => (v === 'nan' ? NaN : v === 'inf' ? Infinity : v === '-inf' ? -Infinity : v);

const fixture = JSON.parse(readFileSync(resolve(process.cwd(), 'test/fixtures/low_bit/low_bit.json'), 'utf8')) as {
  fp8: Record<Fp8Type, { table: Num[]; x: Num[]; codes: number[] }>;
  nf4: Array<{ x: number[]; block_size: number; codes: number[]; absmax: number[] }>;
};

test('FP8 decoding of all 256 codes equals the reference table', () => {
  for (const t of FP8_TYPES) {
    const table = fp8Table(t);
    fixture.fp8[t].table.forEach((v, c) => {
      const want = num(v);
      if (Number.isNaN(want)) assert.ok(Number.isNaN(fromFp8(c, t)), `${t} ${c}`);
      else assert.ok(Object.is(fromFp8(c, t), want) && Object.is(table[c], Math.fround(want)), `${t} code ${c}: ${fromFp8(c, t)} vs ${want}`);
    });
  }
});

test('FP8 encoding rounds to nearest even and saturates as the reference does, on specials, ties, subnormals and random values', () => {
  for (const t of FP8_TYPES) {
    const { x, codes } = fixture.fp8[t];
    assert.ok(x.length > 200);
    x.forEach((v, i) => assert.equal(toFp8(num(v), t), codes[i], `${t}: fp8(${v})`));
  }
});

test('the ONNX Cast table with saturate=1: ±0, NaN, ±Inf and out-of-range values', () => {
  for (const t of FP8_TYPES) {
    const { max, maxCode, nanCode } = FP8[t];
    assert.equal(toFp8(0, t), 0x00);
    assert.equal(toFp8(-0, t), 0x80);
    assert.equal(toFp8(NaN, t), nanCode);
    assert.equal(toFp8(Infinity, t), maxCode);
    assert.equal(toFp8(-Infinity, t), 0x80 | maxCode);
    assert.equal(toFp8(3.4e38, t), maxCode);
    assert.equal(toFp8(-max * 1.5, t), 0x80 | maxCode);
    assert.equal(fromFp8(maxCode, t), max);
  }
  // E4M3FN: largest 448 = 0x7E, 0x7F is NaN; smallest subnormal 2^-9; 2^-10 is a tie between 0 and it: even (0) wins.
  assert.equal(fromFp8(0x38, 'float8e4m3fn'), 1);
  assert.equal(toFp8(2 ** -9, 'float8e4m3fn'), 0x01);
  assert.equal(toFp8(2 ** -10, 'float8e4m3fn'), 0x00);
  assert.equal(toFp8(3 * 2 ** -10, 'float8e4m3fn'), 0x02);
  // 1.0625 lies halfway between 1 (0x38) and 1.125 (0x39): to the even mantissa, 0x38.
  assert.equal(toFp8(1.0625, 'float8e4m3fn'), 0x38);
  assert.equal(toFp8(1.1875, 'float8e4m3fn'), 0x3a);
  // E5M2: 0x7B = 57344, 0x7C is +Inf (never produced when saturating).
  assert.equal(fromFp8(0x7c, 'float8e5m2'), Infinity);
  assert.equal(toFp8(2 ** -16, 'float8e5m2'), 0x01);
});

test('quantizeFp8 scales each channel by max|x| / largest and reports the reconstruction error', () => {
  const x = randn(64 * 16, 5);
  const plan = planParams([64, 16], 'per_channel', 1, 1);
  for (const t of FP8_TYPES) {
    const { codes, scale, sums } = quantizeFp8(x, plan, t);
    let maxAbs = 0;
    for (let r = 0; r < 64; r++) maxAbs = Math.max(maxAbs, Math.abs(x[r * 16]!));
    assert.equal(scale[0], Math.fround(maxAbs / FP8[t].max));
    let sq = 0;
    for (let i = 0; i < x.length; i++) {
      const s = scale[i % 16]!;
      assert.equal(codes[i], toFp8(Math.fround(x[i]! / s), t));
      const e = x[i]! - Math.fround(fromFp8(codes[i]!, t) * s);
      sq += e * e;
    }
    assert.ok(Math.abs(sums.sumSq - sq) <= 1e-12 * sq);
    // E4M3 keeps 3 mantissa bits (~31 dB on Gaussian data), E5M2 2 (~25 dB).
    const snr = reportFromSums(sums).snr_db!;
    assert.ok(t === 'float8e4m3fn' ? snr > 29 && snr < 34 : snr > 23 && snr < 28, `${t}: ${snr}`);
  }
});

test('NF4 codes and absmax equal the reference, midpoints go to the lower level', () => {
  for (const c of fixture.nf4) {
    const { codes, absmax } = quantizeNf4(Float32Array.from(c.x), c.block_size);
    assert.deepEqual(Array.from(codes), c.codes);
    assert.deepEqual(Array.from(absmax), c.absmax.map(Math.fround));
  }
  assert.equal(nf4Code(0), 7);
  assert.equal(nf4Code(1), 15);
  assert.equal(nf4Code(-1), 0);
  assert.equal(NF4_LEVELS[7], 0);
});

test('NF4 packs the first code of each pair in the high nibble', () => {
  assert.deepEqual(Array.from(packNf4(Uint8Array.from([1, 2, 15, 0, 7]))), [0x12, 0xf0, 0x70]);
});

// GPTQ against the NumPy float64 re-implementation of fasterquant (test/fixtures/gptq/generate.py):
// the float64 reference exactly, the kernel path (float32 linear algebra) within a stated
// fraction of codes one step off.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { readNpyNumeric } from '../../../src/codecs/npy.js';
import { gptq, type GptqOptions } from '../../../src/core/methods/gptq.js';
import { gptqReference } from '../../../src/core/reference/gptq.js';

interface Case {
  input: string;
  bits: number;
  scheme: 'symmetric' | 'asymmetric';
  group_size: number;
  act_order: boolean;
  block_size: number;
  codes_int8_base64: string;
  scales: number[];
  zero_points: number[];
}

const dir = resolve(process.cwd(), 'test/fixtures/gptq');
const cases = (JSON.parse(readFileSync(resolve(dir, 'gptq.json'), 'utf8')) as { cases: Case[] }).cases;
const limits = { maxElements: 1 << 20, maxDims: 4 };
const inputs = new Map<string, { w: Float32Array; xtx: Float64Array; rows: number; cols: number }>();
function input(name: string) {
  let got = inputs.get(name);
  if (!got) {
    const w = readNpyNumeric(readFileSync(resolve(dir, `${name}.w.npy`)), limits);
    const xtx = readNpyNumeric(readFileSync(resolve(dir, `${name}.xtx.npy`)), limits);
    got = { w: Float32Array.from(w.data), xtx: Float64Array.from(xtx.data), rows: w.shape[0]!, cols: w.shape[1]! };
    inputs.set(name, got);
  }
  return got;
}

const optsOf = (c: Case): GptqOptions => ({ bits: c.bits, scheme: c.scheme, groupSize: c.group_size, actOrder: c.act_order, blockSize: c.block_size });
const codesOf = (c: Case) => Int32Array.from(new Int8Array(Buffer.from(c.codes_int8_base64, 'base64')));
const label = (c: Case) => `${c.input} ${c.bits}-bit ${c.scheme} g${c.group_size} act_order=${c.act_order} block ${c.block_size}`;

test('the float64 reference gives the NumPy codes, scales and zero points of every case exactly', () => {
  assert.equal(cases.length, 96);
  for (const c of cases) {
    const { w, xtx, rows, cols } = input(c.input);
    const got = gptqReference(w, rows, cols, xtx, optsOf(c));
    assert.deepEqual(got.codes, codesOf(c), label(c));
    assert.deepEqual(Array.from(got.scales), c.scales.map(Math.fround), label(c));
    assert.deepEqual(Array.from(got.zeroPoints), c.zero_points, label(c));
  }
});

// Measured on these cases: no code differs, and the scales that differ (groups fitted on the
// float32 W during the loop) differ in the last bits. The bound leaves room for a boundary
// value on another machine's float32 rounding, not for an error in the steps (an error moves
// far more codes than this, as the reference's own exact match shows).
const KERNEL_CODE_MISMATCH = 0.002;
const KERNEL_SCALE_RTOL = 1e-6;

test(`the kernel path gives the NumPy codes with at most ${KERNEL_CODE_MISMATCH * 100}% one step off, scales within ${KERNEL_SCALE_RTOL} relative`, () => {
  let differ = 0;
  let total = 0;
  for (const c of cases) {
    const { w, xtx, rows, cols } = input(c.input);
    const got = gptq(w, rows, cols, xtx, optsOf(c));
    const want = codesOf(c);
    for (let i = 0; i < want.length; i++) {
      if (got.codes[i] === want[i]) continue;
      differ++;
      assert.ok(Math.abs(got.codes[i]! - want[i]!) <= 1, `${label(c)}: code ${i} is ${got.codes[i]}, NumPy ${want[i]}`);
    }
    total += want.length;
    c.scales.forEach((s, i) => assert.ok(Math.abs(got.scales[i]! - s) <= KERNEL_SCALE_RTOL * s, `${label(c)}: scale ${i} is ${got.scales[i]}, NumPy ${s}`));
    assert.deepEqual(Array.from(got.zeroPoints), c.zero_points, label(c));
  }
  assert.ok(differ <= KERNEL_CODE_MISMATCH * total, `${differ} of ${total} codes differ`);
});

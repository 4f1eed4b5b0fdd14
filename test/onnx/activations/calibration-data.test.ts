import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeNpy } from '../../../src/codecs/npy.js';
import { encodeNpz, type NpzMember } from '../../../src/codecs/npz.js';
import { calibrationSamplesFromNpz, randomCalibrationSamples, splitSamples } from '../../../src/onnx/activations/calibration-data.js';
import { randn } from '../models.js';
import { calibNet } from './calib-models.js';

// The calibration .npz against the model's inputs: every rule of calibration-data.ts and
// every 400/413 it promises, each naming the array at fault.

const LIMITS = { maxBytes: 1 << 24, maxSamples: 64 };
const model = calibNet();

function x(n: number, shape: number[] = [n, 4, 10, 10]): NpzMember {
  const count = shape.reduce((a, b) => a * b, 1);
  return { name: 'x.npy', data: encodeNpy(randn(count, 5), '<f4', shape) };
}
function shift(n: number, descr = '<i8', shape: number[] = [n, 1]): NpzMember {
  const data = descr === '<i8' ? BigInt64Array.from({ length: n }, (_, i) => BigInt(i)) : new Int32Array(n);
  return { name: 'shift.npy', data: encodeNpy(data, descr, shape) };
}

function fails(members: NpzMember[], status: number, pattern: RegExp, limits = LIMITS): void {
  assert.throws(
    () => calibrationSamplesFromNpz(encodeNpz(members), model, limits),
    (err: Error & { statusCode?: number; code?: string }) => {
      assert.equal(err.statusCode, status, err.message);
      assert.match(err.message, pattern);
      return true;
    },
  );
}

describe('calibration samples from an .npz', () => {
  it('hands out sample i as array[i], each a batch, with the leading axis kept for [N, ...input] arrays', () => {
    const s = calibrationSamplesFromNpz(encodeNpz([x(3, [3, 2, 4, 10, 10]), shift(3)]), model, LIMITS);
    assert.equal(s.count, 3);
    assert.deepEqual([...s.inputNames].sort(), ['shift', 'x']);
    const f = s.feeds(2);
    assert.deepEqual(f.x!.dims, [2, 4, 10, 10]);
    assert.equal(f.x!.type, 'float32');
    const all = randn(3 * 800, 5);
    assert.deepEqual(Array.from(f.x!.data as Float32Array), Array.from(all.subarray(1600, 2400)));
    assert.equal(f.shift!.type, 'int64');
    assert.deepEqual(Array.from(f.shift!.data as BigInt64Array), [2n]);
  });

  it('takes [N, ...] without the batch dim as N batches of one when the input has a symbolic first dim', () => {
    const s = calibrationSamplesFromNpz(encodeNpz([x(5, [5, 4, 10, 10]), shift(5)]), model, LIMITS);
    assert.equal(s.count, 5);
    assert.deepEqual(s.feeds(4).x!.dims, [1, 4, 10, 10]);
    assert.deepEqual(Array.from(s.feeds(4).x!.data as Float32Array), Array.from(randn(5 * 400, 5).subarray(1600, 2000)));
  });

  it('refuses a missing input, a misnamed array and a second array for one input, naming them', () => {
    fails([x(2)], 400, /no array for input 'shift' \(int64, \[1\]\)/);
    fails([x(2), shift(2), { name: 'y.npy', data: encodeNpy(new Float32Array(2), '<f4', [2]) }], 400, /array 'y', but the model has no input of that name.*'x', 'shift'/);
    fails([x(2), shift(2), { ...x(2), name: 'x' }], 400, /two arrays for input 'x'/);
  });

  it('refuses the wrong dtype, naming the array and the type the input takes', () => {
    fails([x(2), shift(2, '<i4')], 400, /array 'shift' is int32, but input 'shift' takes int64/);
    fails([{ name: 'x.npy', data: encodeNpy(new Float64Array(800), '<f8', [2, 4, 10, 10]) }, shift(2)], 400, /array 'x' is float64, but input 'x' takes float32.*astype\(np\.float32\)/);
    fails([{ name: 'x.npy', data: encodeNpy(new Uint8Array(4), '|S1', [2, 2]) }, shift(2)], 400, /array 'x'.*unsupported dtype/);
  });

  it('refuses a shape that does not fit the input, N = 0, and arrays with different N', () => {
    fails([x(2, [2, 3, 10, 10]), shift(2)], 400, /array 'x' gives input 'x' samples of shape \[1, 3, 10, 10\], but the input's dim 1 is 4/);
    fails([x(2, [2, 4, 10]), shift(2)], 400, /array 'x' has shape \[2, 4, 10\], which does not fit input 'x' of shape \['batch', 4, 10, 10\]/);
    fails([x(0, [0, 4, 10, 10]), shift(1)], 400, /array 'x' holds no samples \(N = 0/);
    fails([x(3), shift(2)], 400, /array 'shift' holds 2 samples but array 'x' holds 3: every array needs the same N/);
    fails([{ name: 'x.npy', data: encodeNpy(new Float32Array(1), '<f4', []) }, shift(1)], 400, /array 'x' is a scalar/);
  });

  it('refuses NaN or Infinity in float data, naming the array and the index', () => {
    const bad = randn(800, 1);
    bad[417] = NaN;
    fails([{ name: 'x.npy', data: encodeNpy(bad, '<f4', [2, 4, 10, 10]) }, shift(2)], 400, /array 'x' holds NaN or ±Infinity at flat index 417/);
  });

  it('answers 413 past CALIBRATION_MAX_SAMPLES or CALIBRATION_MAX_BYTES, before decoding', () => {
    fails([x(9), shift(9)], 413, /array 'x' holds 9 samples; the limit is CALIBRATION_MAX_SAMPLES=8/, { ...LIMITS, maxSamples: 8 });
    fails([x(2), shift(2)], 413, /take \d+ bytes uncompressed; the limit is CALIBRATION_MAX_BYTES=2048/, { ...LIMITS, maxBytes: 2048 });
  });
});

describe('random calibration samples and held-back splits', () => {
  it('draws N(0, 1) float inputs and zero integer inputs, symbolic dims from the caller, the same on every call', () => {
    const s = randomCalibrationSamples(model, 4, { batch: 2 }, 7);
    assert.equal(s.source, 'random');
    const a = s.feeds(1);
    assert.deepEqual(a.x!.dims, [2, 4, 10, 10]);
    assert.deepEqual(Array.from(a.shift!.data as BigInt64Array), [0n]);
    const v = a.x!.data as Float32Array;
    const mean = v.reduce((p, q) => p + q, 0) / v.length;
    const sd = Math.sqrt(v.reduce((p, q) => p + (q - mean) ** 2, 0) / v.length);
    assert.ok(Math.abs(mean) < 0.1 && Math.abs(sd - 1) < 0.1, `${mean} ${sd}`);
    assert.deepEqual(Array.from(s.feeds(1).x!.data as Float32Array), Array.from(v));
    assert.notDeepEqual(Array.from(s.feeds(2).x!.data as Float32Array), Array.from(v));
  });

  it('splits off the last samples, and refuses to hold back all of them', () => {
    const s = calibrationSamplesFromNpz(encodeNpz([x(5), shift(5)]), model, LIMITS);
    const { calibrate, heldBack } = splitSamples(s, 2);
    assert.equal(calibrate.count, 3);
    assert.equal(heldBack.count, 2);
    assert.deepEqual(Array.from(heldBack.feeds(0).shift!.data as BigInt64Array), [3n]);
    assert.throws(() => heldBack.feeds(2), RangeError);
    assert.throws(() => splitSamples(s, 5), /cannot hold back 5 of 5 samples/);
  });
});

// lsq with llama.cpp Q4_K's data-free weights (w_i = av_x + |x_i|): the weights' formula, and
// that calibrate fits every group with its own weights (the same parameters as lsqGroup given
// them), never worse than rtn by that weighted error, and not the same as plain lsq.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { minmaxRange } from '../../../src/core/calibrate.js';
import { lsqGroup } from '../../../src/core/methods/lsq.js';
import { magnitudeWeights } from '../../../src/core/methods/lsq-weights.js';
import { storedError } from '../../../src/core/methods/stored.js';
import { calibrate, intParamsOf, type QuantSpec } from '../../../src/core/quantize.js';
import { paramsFromRange } from '../../../src/core/calibrate.js';
import { randn } from '../../onnx/models.js';

test('magnitudeWeights is sqrt(Σx²/n) + |x_i| over the group, in float32', () => {
  const w = magnitudeWeights(Float32Array.from([3, -4, 0, 1]));
  const av = Math.sqrt((9 + 16 + 0 + 1) / 4);
  assert.deepEqual(Array.from(w), [av + 3, av + 4, av, av + 1].map(Math.fround));
  assert.equal(magnitudeWeights(new Float32Array(0)).length, 0);
  // All zeros: every weight 0 (lsq then keeps rtn's parameters, its start).
  assert.deepEqual(Array.from(magnitudeWeights(new Float32Array(3))), [0, 0, 0]);
});

const spec = (scheme: QuantSpec['scheme'], lsqWeights?: QuantSpec['lsqWeights']): QuantSpec => ({
  bits: 4, scheme, granularity: 'per_group', axis: -1, groupSize: 32, calibration: 'minmax', percentile: 99.99, method: 'lsq', lsqWeights,
});

test('lsqWeights=magnitude: each group is lsqGroup with its own magnitude weights, never worse than rtn by that error, and differs from plain lsq', () => {
  const rows = 16;
  const x = randn(rows * 128, 11);
  for (const scheme of ['asymmetric', 'symmetric'] as const) {
    const ip = intParamsOf(4, scheme);
    const mag = calibrate(x, [rows, 128], spec(scheme, 'magnitude'));
    const mse = calibrate(x, [rows, 128], spec(scheme, 'mse'));
    const plain = calibrate(x, [rows, 128], spec(scheme));
    assert.deepEqual(mse.scale, plain.scale, 'mse is the default');
    let differ = 0;
    for (let g = 0; g < rows * 4; g++) {
      const slice = x.subarray(g * 32, g * 32 + 32);
      const w = magnitudeWeights(slice);
      const range = minmaxRange(slice, scheme);
      const one = lsqGroup(slice, range, ip, w);
      assert.equal(mag.scale[g], one.scale, `${scheme} group ${g}: scale`);
      assert.equal(mag.zeroPoint[g], one.zeroPoint, `${scheme} group ${g}: zero point`);
      const rtn = paramsFromRange(range, ip);
      const errMag = storedError(slice, w, mag.scale[g]!, mag.zeroPoint[g]!, ip.qMin, ip.qMax).err;
      const errRtn = storedError(slice, w, rtn.scale, rtn.zeroPoint, ip.qMin, ip.qMax).err;
      assert.ok(errMag <= errRtn, `${scheme} group ${g}: weighted error ${errMag} > rtn's ${errRtn}`);
      if (mag.scale[g] !== plain.scale[g] || mag.zeroPoint[g] !== plain.zeroPoint[g]) differ++;
    }
    assert.ok(differ >= rows, `${scheme}: only ${differ} of ${rows * 4} groups differ from plain lsq`);
  }
});

test('given weights (imatrix) take precedence over lsqWeights', () => {
  const x = randn(4 * 64, 5);
  const weights = Float32Array.from(x, (_, i) => 1 + (i % 7));
  const a = calibrate(x, [4, 64], { ...spec('asymmetric', 'magnitude'), weights });
  const b = calibrate(x, [4, 64], { ...spec('asymmetric'), weights });
  assert.deepEqual(a.scale, b.scale);
  assert.deepEqual(a.zeroPoint, b.zeroPoint);
});

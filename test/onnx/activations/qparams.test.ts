import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { computeScaleZp, fakeQuantize, type ActivationType } from '../../../src/onnx/activations/qparams.js';

// Reference values: test/fixtures/static/qparams_reference.py (numpy, onnxruntime's formula).
const ref = JSON.parse(readFileSync('test/fixtures/static/qparams.json', 'utf8')) as {
  scale_zp: { min: number; max: number; type: ActivationType; symmetric: boolean; scale: number; zero_point: number }[];
  fake_quantize: { type: ActivationType; scale: number; zero_point: number; x: number[]; y: number[] }[];
};

test('activation scale and zero point match onnxruntime compute_scale_zp for every type and symmetry', () => {
  assert.ok(ref.scale_zp.length >= 50);
  for (const c of ref.scale_zp) {
    const p = computeScaleZp(c.min, c.max, c.type, c.symmetric);
    const what = `${c.type}${c.symmetric ? ' symmetric' : ''} [${c.min}, ${c.max}]`;
    assert.equal(p.scale, c.scale, `${what}: scale`);
    assert.equal(p.zeroPoint, c.zero_point, `${what}: zero point`);
  }
});

test('fake quantization is QuantizeLinear then DequantizeLinear (ties to even, saturation)', () => {
  for (const c of ref.fake_quantize) {
    const p = computeScaleZp(-1.2, 3.4, c.type);
    assert.equal(p.scale, c.scale);
    assert.equal(p.zeroPoint, c.zero_point);
    assert.deepEqual(c.x.map((x) => fakeQuantize(x, p)), c.y, c.type);
  }
});

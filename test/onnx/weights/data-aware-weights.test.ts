import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { gptq } from '../../../src/core/methods/gptq.js';
import { dequantizeWith, quantize } from '../../../src/core/quantize.js';
import { floatTensor, graph, model, node, valueInfo } from '../../../src/onnx/graph/build.js';
import { encodeModelBytes } from '../../../src/onnx/proto/encode.js';
import { DataType } from '../../../src/onnx/proto/model.js';
import { quantizeGptq } from '../../../src/onnx/weights/gptq-weight.js';
import { elementImportance, quantizeImatrix } from '../../../src/onnx/weights/imatrix.js';
import { modelQuantOptions } from '../../../src/onnx/weights/options.js';
import type { WeightPlan } from '../../../src/onnx/weights/plan.js';
import { proxyLoss } from '../../../src/onnx/weights/proxy-loss.js';
import { quantizeModel } from '../../../src/onnx/weights/quantize-model.js';
import { specFor } from '../../../src/onnx/weights/quantize-weight.js';
import { randn } from '../models.js';

// The model path's side of GPTQ and imatrix: the core's results laid out in the weight's own
// layout (MatMul [K, N], Gemm transB [N, K]), the emitters writing them as onnxruntime runs
// them, and the proxy loss ‖XΔW‖² the report compares with rtn's.

interface ImatrixCase {
  name: string;
  bits: number;
  scheme: 'asymmetric' | 'symmetric';
  granularity: 'per_group' | 'per_channel';
  group_size: number;
  dims: number[];
  w: number[];
  importance: number[];
  scale: number[];
  zero_point: number[];
  q: number[];
}

const K = 64;
const N = 8;
const ROWS = 96;
const x = randn(ROWS * K, 7);
for (let r = 0; r < ROWS; r++) for (const c of [3, 40]) x[r * K + c]! *= 8;
const xtx = new Float64Array(K * K);
for (let r = 0; r < ROWS; r++) for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) xtx[i * K + j]! += x[r * K + i]! * x[r * K + j]!;
const sumSq = Float64Array.from({ length: K }, (_, i) => xtx[i * K + i]!);
const opts = modelQuantOptions({ bits: 4, scheme: 'asymmetric', groupSize: 16, method: 'gptq' });

/** W[K, N] as [N, K] and back. */
function transpose(w: Float32Array, r: number, c: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = w[i * c + j]!;
  return out;
}

/** ‖X·(W − Ŵ)‖² over the rows of x, W [K, N]. */
function directLoss(w: Float32Array, wHat: Float32Array): number {
  let loss = 0;
  for (let r = 0; r < ROWS; r++) {
    for (let n = 0; n < N; n++) {
      let y = 0;
      for (let k = 0; k < K; k++) y += x[r * K + k]! * (w[k * N + n]! - wHat[k * N + n]!);
      loss += y * y;
    }
  }
  return loss;
}

describe('gptq on model weights', () => {
  const w = randn(K * N, 11, 0.2);
  for (const layout of ['MatMul [K, N]', 'Gemm transB [N, K]'] as const) {
    for (const granularity of ['per_group', 'per_channel'] as const) {
      it(`${layout}, ${granularity}: the integers and parameters dequantize to the core's result`, () => {
        const kAxis = layout === 'MatMul [K, N]' ? 0 : 1;
        const values = kAxis === 0 ? w : transpose(w, K, N);
        const dims = kAxis === 0 ? [K, N] : [N, K];
        const axis = granularity === 'per_group' ? kAxis : 1 - kAxis;
        const plan: WeightPlan = { format: 'qdq', bits: 4, granularity, groupSize: 16, axis };
        const got = quantizeGptq(values, dims, plan, opts, kAxis, xtx);
        const deq = dequantizeWith(got.q, got.params);
        const r = gptq(transpose(w, K, N), N, K, xtx, { bits: 4, scheme: 'asymmetric', groupSize: granularity === 'per_group' ? 16 : K });
        for (let n = 0; n < N; n++) {
          for (let k = 0; k < K; k++) {
            const g = Math.floor(k / (granularity === 'per_group' ? 16 : K));
            const want = Math.fround((r.codes[n * K + k]! - r.zeroPoints[n * r.groups + g]!) * r.scales[n * r.groups + g]!);
            const at = kAxis === 0 ? k * N + n : n * K + k;
            assert.equal(deq[at], want, `element k ${k}, n ${n}`);
          }
        }
      });
    }
  }

  it('MatMulNBits written from gptq’s integers computes x·Ŵ in onnxruntime, and gptq’s proxy loss beats rtn’s', async () => {
    const m = model(
      graph({
        nodes: [node('MatMul', ['x', 'W'], ['y'], { name: 'mm' })],
        initializers: [floatTensor('W', [K, N], w)],
        inputs: [valueInfo('x', DataType.float32, [ROWS, K])],
        outputs: [valueInfo('y', DataType.float32, [ROWS, N])],
      }),
      { opset: 17 },
    );
    const o = { ...opts, format: 'matmulnbits' as const, minElements: 1 };
    let wHat: Float32Array | undefined;
    const r = quantizeModel(m, o, {
      quantizeWeight: (c, plan, values) => {
        const weight = quantizeGptq(values, c.tensor.dims, plan, o, 0, xtx);
        wHat = dequantizeWith(weight.q, weight.params);
        return { weight, method: 'gptq' };
      },
    });
    assert.equal(r.tensors[0]!.method, 'gptq');
    assert.equal(r.model.graph.nodes[0]!.opType, 'MatMulNBits');
    const s = await ort.InferenceSession.create(encodeModelBytes(r.model), { extra: { session: { qdq_matmulnbits_accuracy_level: '0' } } });
    const y = (await s.run({ x: new ort.Tensor('float32', x, [ROWS, K]) })).y!.data as Float32Array;
    await s.release();
    for (let row = 0; row < ROWS; row++) {
      for (let n = 0; n < N; n++) {
        let want = 0;
        for (let k = 0; k < K; k++) want += x[row * K + k]! * wHat![k * N + n]!;
        assert.ok(Math.abs(y[row * N + n]! - want) < 1e-3 * (1 + Math.abs(want)), `y[${row}, ${n}] ${y[row * N + n]} vs ${want}`);
      }
    }
    const plan: WeightPlan = { format: 'matmulnbits', bits: 4, granularity: 'per_group', groupSize: 16, axis: 0 };
    const rtn = quantize(w, [K, N], specFor(plan, { ...o, method: 'rtn' }));
    const rtnHat = dequantizeWith(rtn.q, rtn.params);
    const stats = { k: K, sumSq, xtx };
    // The proxy loss from XᵀX is the layer's output error on the rows.
    for (const h of [wHat!, rtnHat]) {
      const a = proxyLoss(w, h, [K, N], 0, stats);
      const b = directLoss(w, h);
      assert.ok(Math.abs(a - b) <= 1e-4 * b, `${a} vs ${b}`);
    }
    assert.ok(directLoss(w, wHat!) < 0.8 * directLoss(w, rtnHat), `gptq ${directLoss(w, wHat!)} vs rtn ${directLoss(w, rtnHat)}`);
  });
});

describe('imatrix on model weights', () => {
  const w = randn(K * N, 5, 0.2);
  const plan: WeightPlan = { format: 'qdq', bits: 4, granularity: 'per_group', groupSize: 16, axis: 0 };
  const weighted = (h: Float32Array, imp: Float64Array) => {
    let e = 0;
    for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) e += imp[k]! * (w[k * N + n]! - h[k * N + n]!) ** 2;
    return e;
  };

  it('gives the NumPy reference (lsq weighted by the input features’ importance) on every case, per group and per channel', () => {
    const cases = (JSON.parse(readFileSync(resolve(process.cwd(), 'test/fixtures/low_bit/low_bit.json'), 'utf8')) as { imatrix: ImatrixCase[] }).imatrix;
    assert.equal(cases.length, 12);
    for (const c of cases) {
      const p: WeightPlan = { format: 'qdq', bits: c.bits as WeightPlan['bits'], granularity: c.granularity, groupSize: c.group_size, axis: c.granularity === 'per_group' ? 0 : 1 };
      const got = quantizeImatrix(Float32Array.from(c.w), c.dims, p, { scheme: c.scheme }, 0, Float64Array.from(c.importance));
      assert.deepEqual([...got.params.scale], c.scale.map(Math.fround), `${c.name}: scales`);
      assert.deepEqual([...got.params.zeroPoint], c.zero_point, `${c.name}: zero points`);
      assert.deepEqual([...got.q], c.q, `${c.name}: integers`);
    }
  });

  it('uniform importance gives lsq’s result exactly (the weights line up with the groups)', () => {
    const got = quantizeImatrix(w, [K, N], plan, { scheme: 'asymmetric' }, 0, new Float64Array(K).fill(1));
    const lsq = quantize(w, [K, N], specFor(plan, { scheme: 'asymmetric', calibration: 'minmax', percentile: 99.99, method: 'lsq' }));
    assert.deepEqual([...got.params.scale], [...lsq.params.scale]);
    assert.deepEqual([...got.params.zeroPoint], [...lsq.params.zeroPoint]);
  });

  it('lowers the importance-weighted error below rtn’s and lsq’s, per group and per channel', () => {
    const imp = Float64Array.from({ length: K }, (_, k) => (k % 5 === 0 ? 100 : 1));
    for (const p of [plan, { ...plan, granularity: 'per_channel' as const, axis: 1 }]) {
      const got = quantizeImatrix(w, [K, N], p, { scheme: 'asymmetric' }, 0, imp);
      const base = { scheme: 'asymmetric' as const, calibration: 'minmax' as const, percentile: 99.99 };
      const rtn = quantize(w, [K, N], specFor(p, { ...base, method: 'rtn' }));
      const lsq = quantize(w, [K, N], specFor(p, { ...base, method: 'lsq' }));
      const e = weighted(dequantizeWith(got.q, got.params), imp);
      assert.ok(e < weighted(dequantizeWith(rtn.q, rtn.params), imp), `${p.granularity}: vs rtn`);
      assert.ok(e < weighted(dequantizeWith(lsq.q, lsq.params), imp), `${p.granularity}: vs lsq`);
    }
  });

  it('element importance follows the K axis in either layout', () => {
    const imp = Float64Array.of(1, 2, 3);
    assert.deepEqual([...elementImportance([3, 2], 0, imp)], [1, 1, 2, 2, 3, 3]);
    assert.deepEqual([...elementImportance([2, 3], 1, imp)], [1, 2, 3, 1, 2, 3]);
  });
});

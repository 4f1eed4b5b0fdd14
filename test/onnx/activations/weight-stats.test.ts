import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { batchesFor, forEachStatsBatch, sumStats, type InputStats } from '../../../src/onnx/activations/weight-stats.js';
import type { CalibrationSamples } from '../../../src/onnx/activations/calibration-data.js';
import { floatTensor, graph, model, node, valueInfo } from '../../../src/onnx/graph/build.js';
import { DataType } from '../../../src/onnx/proto/model.js';
import { randn } from '../models.js';

// The statistics of weight inputs: Σx², Σ|x| and Σxᵀx over every row of every sample, checked
// against the same sums taken directly from the samples (x is a graph input, r = Relu(x) an
// intermediate), in one batch and in batches forced by a small byte budget.

const K = 24;
const ROWS = 5;
const N = 6;
const F = DataType.float32;

function net() {
  return model(
    graph({
      nodes: [
        node('MatMul', ['x', 'W1'], ['h'], { name: 'a' }),
        node('Relu', ['x'], ['r'], { name: 'relu' }),
        node('MatMul', ['r', 'W2'], ['g'], { name: 'b' }),
      ],
      initializers: [floatTensor('W1', [K, 8], randn(K * 8, 1)), floatTensor('W2', [K, 8], randn(K * 8, 2))],
      inputs: [valueInfo('x', F, [1, ROWS, K])],
      outputs: [valueInfo('h', F, [1, ROWS, 8]), valueInfo('g', F, [1, ROWS, 8])],
    }),
    { opset: 17 },
  );
}

const data = Array.from({ length: N }, (_, i) => randn(ROWS * K, 10 + i));
const samples: CalibrationSamples = {
  count: N,
  inputNames: ['x'],
  inputs: [{ name: 'x', dtype: 'float32', dims: [1, ROWS, K] }],
  source: 'user',
  feeds: (i) => ({ x: new ort.Tensor('float32', data[i]!.slice(), [1, ROWS, K]) }),
};

function expected(transform: (v: number) => number) {
  const sumSq = new Float64Array(K);
  const sumAbs = new Float64Array(K);
  const xtx = new Float64Array(K * K);
  for (const d of data) {
    for (let r = 0; r < ROWS; r++) {
      for (let i = 0; i < K; i++) {
        const a = transform(d[r * K + i]!);
        sumSq[i]! += a * a;
        sumAbs[i]! += Math.abs(a);
        for (let j = 0; j < K; j++) xtx[i * K + j]! += a * transform(d[r * K + j]!);
      }
    }
  }
  return { sumSq, sumAbs, xtx };
}

function close(a: ArrayLike<number>, b: ArrayLike<number>, what: string) {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= 1e-4 * (1 + Math.abs(b[i]!)), `${what}[${i}]: ${a[i]} vs ${b[i]}`);
}

describe('weight input statistics', () => {
  for (const budget of [1 << 20, 8 * K * K]) {
    it(`match the sums taken directly (byte budget ${budget}: ${budget < 2 * 8 * K * K ? 'two passes' : 'one pass'})`, async () => {
      const units = [[{ activation: 'x', k: K, layout: 'rows' as const }], [{ activation: 'r', k: K, layout: 'rows' as const }]];
      const batches = batchesFor(units, true, budget);
      const got = new Map<string, InputStats>();
      let done = 0;
      const passes = await forEachStatsBatch(net(), batches, samples, { full: true, maxBytes: budget, onSample: (d) => (done = d) }, (stats) => {
        for (const [k, v] of stats) got.set(k, v);
      });
      assert.equal(passes.passes, budget < 2 * 8 * K * K ? 2 : 1);
      assert.ok(passes.peakBytes <= budget);
      assert.equal(done, passes.passes * N);
      for (const [name, f] of [['x', (v: number) => v], ['r', (v: number) => Math.max(v, 0)]] as const) {
        const s = got.get(name)!;
        const e = expected(f);
        assert.equal(s.rows, N * ROWS);
        close(s.sumSq, e.sumSq, `${name} sumSq`);
        close(s.sumAbs, e.sumAbs, `${name} sumAbs`);
        close(s.xtx!, e.xtx, `${name} xtx`);
      }
    });
  }

  it('diagonal statistics need no K×K sums and one pass', async () => {
    const batches = batchesFor([[{ activation: 'r', k: K, layout: 'rows' }]], false, 1);
    let s: InputStats | undefined;
    const passes = await forEachStatsBatch(net(), batches, samples, { full: false, maxBytes: 1 }, (stats) => {
      s = stats.get('r');
    });
    assert.equal(passes.passes, 1);
    assert.equal(s!.xtx, undefined);
    close(s!.sumSq, expected((v) => Math.max(v, 0)).sumSq, 'sumSq');
  });

  it('one weight whose K×K sums pass the budget is a 413 naming the activation and the limit', () => {
    assert.throws(
      () => batchesFor([[{ activation: 'x', k: K, layout: 'rows' }]], true, 8 * K * K - 1),
      (e: Error & { statusCode?: number }) => e.statusCode === 413 && /'x'/.test(e.message) && /HESSIAN_MAX_BYTES/.test(e.message),
    );
  });

  it('a weight read by two nodes adds both inputs’ sums', () => {
    const a: InputStats = { k: 2, rows: 1, sumSq: Float64Array.of(1, 4), sumAbs: Float64Array.of(1, 2), xtx: Float64Array.of(1, 2, 2, 4) };
    const b: InputStats = { k: 2, rows: 2, sumSq: Float64Array.of(9, 1), sumAbs: Float64Array.of(3, 1), xtx: Float64Array.of(9, 3, 3, 1) };
    const s = sumStats([a, b]);
    assert.equal(s.rows, 3);
    assert.deepEqual([...s.sumSq], [10, 5]);
    assert.deepEqual([...s.xtx!], [10, 5, 5, 5]);
  });
});

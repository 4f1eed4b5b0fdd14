import assert from 'node:assert/strict';
import { test } from 'node:test';
import { countOps } from '../../../src/onnx/runtime/fused-ops.js';
import { measureLatency } from '../../../src/onnx/runtime/latency.js';
import { gemmMlp } from '../models.js';

// No timed assertions: the figures are checked for shape and bounds only.

test('latency: both models, one intra-op thread and the default, median of a bounded number of runs', async () => {
  const m = { bytes: gemmMlp().bytes };
  const r = await measureLatency(m, m, { budgetMs: 50, minRuns: 3, maxRuns: 7 });
  assert.equal(r.status, 'ok');
  if (r.status !== 'ok') return;
  assert.deepEqual(r.rows.map((x) => x.intra_op_threads), [1, 0]);
  for (const row of r.rows) {
    assert.ok(row.original_runs >= 3 && row.original_runs <= 7, String(row.original_runs));
    assert.ok(row.quantized_runs >= 3 && row.quantized_runs <= 7);
    assert.ok(row.original_ms > 0 && row.quantized_ms > 0);
    assert.equal(row.speedup, row.original_ms / row.quantized_ms);
  }
});

test('latency of a model onnxruntime cannot run is skipped with its reason', async () => {
  const r = await measureLatency({ bytes: new Uint8Array([1, 2, 3]) }, { bytes: gemmMlp().bytes });
  assert.equal(r.status, 'skipped');
});

test('fused-op counts split integer kernels from float compute and Q/DQ', () => {
  const c = countOps(['QLinearConv', 'QLinearConv', 'Conv', 'QuantizeLinear', 'DequantizeLinear', 'DequantizeLinear', 'QGemm', 'Relu']);
  assert.deepEqual(c.fused, { QLinearConv: 2, QGemm: 1 });
  assert.deepEqual(c.float_compute, { Conv: 1 });
  assert.equal(c.quantize_linear, 1);
  assert.equal(c.dequantize_linear, 2);
  assert.equal(c.nodes, 8);
});

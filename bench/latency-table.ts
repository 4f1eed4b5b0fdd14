import { floatTensor, graph, model, node, valueInfo } from '../src/onnx/graph/build.js';
import { decodeModel } from '../src/onnx/proto/decode.js';
import { encodeModelBytes } from '../src/onnx/proto/encode.js';
import { DataType } from '../src/onnx/proto/model.js';
import { measureLatency } from '../src/onnx/runtime/latency.js';
import { modelQuantOptions, type ModelQuantOptions } from '../src/onnx/weights/options.js';
import { quantizeModel } from '../src/onnx/weights/quantize-model.js';
import type { BenchOptions, Detail, ScenarioResult } from './lib/rows.js';
import { gaussian } from './lib/tensors.js';

// For every weight format: the quantized model's onnxruntime latency against the float
// model's, measured by the service's own measureLatency (both sessions open, runs in turn,
// medians; one intra-op thread and onnxruntime's default), on one transformer-shaped MLP
// (4 blocks of MatMul 1024 → 4096 → Relu → MatMul 4096 → 1024, batch of 32 tokens). The
// table is details only: the issue sets no target on a format's speed. Static QDQ on conv
// nets is bench/static.ts's (its own latency rows).

const D = 1024;
const H = 4096;
const TOKENS = 32;

function mlp(opset: number): Uint8Array {
  const initializers = [];
  const nodes = [];
  let x = 'x';
  for (let b = 0; b < 4; b++) {
    initializers.push(floatTensor(`up${b}`, [D, H], gaussian(D * H, 3 + b).map((v) => v * 0.03)));
    initializers.push(floatTensor(`down${b}`, [H, D], gaussian(D * H, 13 + b).map((v) => v * 0.015)));
    nodes.push(node('MatMul', [x, `up${b}`], [`u${b}`], { name: `up${b}` }), node('Relu', [`u${b}`], [`r${b}`], { name: `relu${b}` }));
    nodes.push(node('MatMul', [`r${b}`, `down${b}`], [b === 3 ? 'y' : `d${b}`], { name: `down${b}` }));
    x = `d${b}`;
  }
  const g = graph({ nodes, initializers, inputs: [valueInfo('x', DataType.float32, [TOKENS, D])], outputs: [valueInfo('y', DataType.float32, [TOKENS, D])] });
  return encodeModelBytes(model(g, { opset }));
}

const FORMATS: { label: string; opset: number; opts: Partial<ModelQuantOptions> }[] = [
  { label: 'qdq int8 per channel', opset: 17, opts: { format: 'qdq', bits: 8, granularity: 'per_channel' } },
  { label: 'qdq int4 per group 128 (opset 21)', opset: 21, opts: { format: 'qdq', bits: 4, granularity: 'per_group', groupSize: 128 } },
  { label: 'matmulnbits 4-bit g32', opset: 17, opts: { format: 'matmulnbits', bits: 4, granularity: 'per_group', groupSize: 32 } },
  { label: 'matmulnbits 8-bit g128', opset: 17, opts: { format: 'matmulnbits', bits: 8, granularity: 'per_group', groupSize: 128 } },
  { label: 'matmulnbits 4-bit g32, method lsq', opset: 17, opts: { format: 'matmulnbits', bits: 4, granularity: 'per_group', groupSize: 32, method: 'lsq' } },
  { label: 'matmulnbits 4-bit g32, method hqq', opset: 17, opts: { format: 'matmulnbits', bits: 4, granularity: 'per_group', groupSize: 32, method: 'hqq' } },
  { label: 'dynamic int8 per channel', opset: 17, opts: { format: 'dynamic', bits: 8, granularity: 'per_channel' } },
  { label: 'nf4 (MatMulBnb4)', opset: 17, opts: { format: 'nf4' } },
  { label: 'fp8e4m3 per channel', opset: 19, opts: { format: 'fp8e4m3', granularity: 'per_channel' } },
];

export async function run(o: BenchOptions): Promise<ScenarioResult> {
  const details: Detail[] = [];
  const floats = new Map<number, Uint8Array>();
  for (const f of FORMATS) {
    const bytes = floats.get(f.opset) ?? mlp(f.opset);
    floats.set(f.opset, bytes);
    const q = encodeModelBytes(quantizeModel(decodeModel(bytes), modelQuantOptions(f.opts)).model);
    const r = await measureLatency({ bytes }, { bytes: q }, { budgetMs: o.quick ? 300 : 1500, minRuns: 5, maxRuns: 100 });
    if (r.status !== 'ok') {
      o.log(`latency-table: ${f.label}: skipped (${r.reason})`);
      continue;
    }
    for (const row of r.rows) {
      const threads = row.intra_op_threads === 1 ? '1 thread' : 'default threads';
      details.push({ name: `${f.label}, ${threads}: float ms`, value: row.original_ms, unit: 'ms' });
      details.push({ name: `${f.label}, ${threads}: quantized ms`, value: row.quantized_ms, unit: 'ms' });
      details.push({ name: `${f.label}, ${threads}: speedup (float / quantized)`, value: row.speedup, unit: '×' });
    }
  }
  return { rows: [], details };
}

import { readFileSync } from 'node:fs';
import { dequantizeWith, quantize } from '../src/core/quantize.js';
import type { QuantMethod } from '../src/core/methods/index.js';
import { calibrationSamplesFromNpz, type CalibrationSamples } from '../src/onnx/activations/calibration-data.js';
import { runWithIntermediates } from '../src/onnx/runtime/collect.js';
import { decodeModel } from '../src/onnx/proto/decode.js';
import { readFloat } from '../src/onnx/proto/tensor-data.js';

// Weight error against layer-output error for the data-free methods, per MatMul of a char LM
// made by train_charlm.py (bench/README.md "Deciding with the noise"): for each weight W[K, N],
// ΔW = W − Ŵ under rtn, lsq and hqq (asymmetric, groups along K) and the output error
// Σ_n ΔW[:, n]ᵀ·XᵀX·ΔW[:, n] / rows on the first NS calibration samples' activations (the
// MatMul's input, from the float model in onnxruntime). Also max/mean of diag(XᵀX): how far
// a few input features dominate. Not a bench scenario (no timing):
//   node dist/bench/lowbit-layers.js DIR [bits=4] [group=128] [samples=8]

const [dir = `${new URL('../../test/fixtures/models/trained/', import.meta.url).pathname}`, bitsArg = '4', groupArg = '128', samplesArg = '8'] = process.argv.slice(2);
const bits = Number(bitsArg);
const groupSize = Number(groupArg);
const model = decodeModel(readFileSync(`${dir.replace(/\/$/, '')}/charlm.onnx`));
const init = new Map(model.graph.initializers.map((t) => [t.name, t]));
const matmuls = model.graph.nodes.filter((n) => n.opType === 'MatMul' && init.has(n.inputs[1]!));
const all = calibrationSamplesFromNpz(readFileSync(`${dir.replace(/\/$/, '')}/charlm-calibration.npz`), model, { maxBytes: 2 ** 30, maxSamples: 4096 });
const samples: CalibrationSamples = { count: Math.min(all.count, Number(samplesArg)), inputNames: all.inputNames, feeds: (i) => all.feeds(i), source: all.source, inputs: all.inputs };

const grams = new Map<string, { k: number; xtx: Float64Array; rows: number }>();
await runWithIntermediates(model, [...new Set(matmuls.map((n) => n.inputs[0]!))], samples, (_i, values) => {
  for (const [name, v] of values) {
    const k = v.dims[v.dims.length - 1]!;
    const rows = v.data.length / k;
    let g = grams.get(name);
    if (!g) grams.set(name, (g = { k, xtx: new Float64Array(k * k), rows: 0 }));
    for (let r = 0; r < rows; r++) {
      const o = r * k;
      for (let a = 0; a < k; a++) {
        const xa = v.data[o + a]!;
        if (xa === 0) continue;
        for (let b = 0; b < k; b++) g.xtx[a * k + b]! += xa * v.data[o + b]!;
      }
    }
    g.rows += rows;
  }
});

const methods: QuantMethod[] = ['rtn', 'lsq', 'hqq'];
const total = new Map(methods.map((m) => [m, 0]));
console.log(`${bits}-bit g${groupSize}, ${samples.count} samples: per MatMul weight, K, max/mean diag(XᵀX), then per method output error and weight error relative to rtn's`);
for (const n of matmuls) {
  const t = init.get(n.inputs[1]!)!;
  const w = readFloat(t);
  const [k, cols] = t.dims as [number, number];
  const g = grams.get(n.inputs[0]!)!;
  let dmax = 0;
  let dsum = 0;
  for (let a = 0; a < k; a++) {
    dmax = Math.max(dmax, g.xtx[a * k + a]!);
    dsum += g.xtx[a * k + a]!;
  }
  const out = new Map<QuantMethod, { output: number; weight: number }>();
  for (const m of methods) {
    const r = quantize(w, t.dims, { bits, scheme: 'asymmetric', granularity: 'per_group', axis: 0, groupSize, calibration: 'minmax', percentile: 99.99, method: m });
    const wh = dequantizeWith(r.q, r.params);
    let output = 0;
    let weight = 0;
    const d = new Float64Array(k);
    for (let c = 0; c < cols; c++) {
      for (let a = 0; a < k; a++) {
        d[a] = w[a * cols + c]! - wh[a * cols + c]!;
        weight += d[a]! ** 2;
      }
      for (let a = 0; a < k; a++) {
        let s = 0;
        for (let b = 0; b < k; b++) s += g.xtx[a * k + b]! * d[b]!;
        output += d[a]! * s;
      }
    }
    out.set(m, { output: output / g.rows, weight });
    total.set(m, total.get(m)! + output / g.rows);
  }
  const rtn = out.get('rtn')!;
  const rel = methods.slice(1).map((m) => `${m} output ${(out.get(m)!.output / rtn.output).toFixed(3)} weight ${(out.get(m)!.weight / rtn.weight).toFixed(3)}`);
  console.log(`${t.name} K ${k} ${(dmax / (dsum / k)).toFixed(1)} | ${rel.join('  ')}`);
}
console.log(`all layers, output error / rtn's: ${methods.map((m) => `${m} ${(total.get(m)! / total.get('rtn')!).toFixed(3)}`).join(', ')}`);

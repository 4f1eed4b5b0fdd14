import { performance } from 'node:perf_hooks';
import { pack } from '../src/core/pack.js';
import { quantize, type QuantSpec } from '../src/core/quantize.js';
import { floatTensor, graph, model, node, valueInfo } from '../src/onnx/graph/build.js';
import { decodeModel } from '../src/onnx/proto/decode.js';
import { encodeModelBytes } from '../src/onnx/proto/encode.js';
import { DataType } from '../src/onnx/proto/model.js';
import { modelQuantOptions, type ModelQuantOptions } from '../src/onnx/weights/options.js';
import { quantizeModel } from '../src/onnx/weights/quantize-model.js';
import { row, type BenchOptions, type Detail, type ScenarioResult } from './lib/rows.js';
import { median, melems } from './lib/stats.js';
import { gaussian } from './lib/tensors.js';

// Weights per second through the model path in one thread (decode, plan, quantize with the
// report, lay out for the format, encode) on a chain of MatMul weights of 2048 x 2048,
// against the tensor API's job on one such weight in the same run: quantize() with the
// error report, per channel for int8; per group of 32 with packing for 4-bit (the model
// path's MatMulNBits also runs the report). The two alternate run by run, so load on a
// shared machine weighs on both; CPU time (process.cpuUsage) is printed beside the wall
// time, since on a loaded machine wall time mostly measures the wait for a core.

const SIDE = 2048;

function chain(layers: number): Uint8Array {
  const initializers = [];
  const nodes = [];
  for (let l = 0; l < layers; l++) {
    initializers.push(floatTensor(`W${l}`, [SIDE, SIDE], gaussian(SIDE * SIDE, 11 + l)));
    nodes.push(node('MatMul', [l === 0 ? 'x' : `h${l - 1}`, `W${l}`], [l === layers - 1 ? 'y' : `h${l}`], { name: `mm${l}` }));
  }
  return encodeModelBytes(model(graph({ nodes, initializers, inputs: [valueInfo('x', DataType.float32, [1, SIDE])], outputs: [valueInfo('y', DataType.float32, [1, SIDE])] })));
}

interface Timed {
  wall: number;
  cpu: number;
}

function timeOnce(fn: () => unknown): Timed {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  fn();
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { wall, cpu: (c.user + c.system) / 1000 };
}

/** Medians of both jobs, run in turn after one warm-up each. */
function alternate(a: () => unknown, b: () => unknown, runs: number): [Timed, Timed] {
  a();
  b();
  const ta: Timed[] = [];
  const tb: Timed[] = [];
  for (let i = 0; i < runs; i++) {
    ta.push(timeOnce(a));
    tb.push(timeOnce(b));
  }
  const med = (t: Timed[]): Timed => ({ wall: median(t.map((x) => x.wall)), cpu: median(t.map((x) => x.cpu)) });
  return [med(ta), med(tb)];
}

export async function run(o: BenchOptions): Promise<ScenarioResult> {
  const layers = o.quick ? 3 : 8;
  const runs = o.quick ? 3 : 5;
  const bytes = chain(layers);
  const weights = layers * SIDE * SIDE;
  const one = gaussian(SIDE * SIDE, 11);
  const path = (opts: ModelQuantOptions) => () => encodeModelBytes(quantizeModel(decodeModel(bytes), opts).model);
  const int8Spec: QuantSpec = { bits: 8, scheme: 'symmetric', granularity: 'per_channel', axis: 1, groupSize: 128, calibration: 'minmax', percentile: 99.99 };
  const int4Spec: QuantSpec = { ...int8Spec, bits: 4, granularity: 'per_group', axis: 0, groupSize: 32 };
  const int8Kernel = () => quantize(one, [SIDE, SIDE], int8Spec);
  const int4Kernel = () => {
    const r = quantize(one, [SIDE, SIDE], int4Spec);
    pack(r.q, r.params.dtype);
  };
  const [p8, k8] = alternate(path(modelQuantOptions({ bits: 8, granularity: 'per_channel' })), int8Kernel, runs);
  const [p4, k4] = alternate(path(modelQuantOptions({ bits: 4, format: 'matmulnbits', granularity: 'per_group', groupSize: 32 })), int4Kernel, runs);
  const rate = (t: Timed, n: number) => ({ wall: melems(n, t.wall), cpu: melems(n, t.cpu) });
  const [r8, b8, r4, b4] = [rate(p8, weights), rate(k8, SIDE * SIDE), rate(p4, weights), rate(k4, SIDE * SIDE)];
  const details: Detail[] = [
    { name: 'int8 per channel model path, by CPU time', value: r8.cpu, unit: 'Melem/s' },
    { name: 'int8 per channel quantize() with the report, by CPU time', value: b8.cpu, unit: 'Melem/s' },
    { name: '4-bit MatMulNBits g32 model path, by CPU time', value: r4.cpu, unit: 'Melem/s' },
    { name: '4-bit per group g32 quantize() + pack, by CPU time', value: b4.cpu, unit: 'Melem/s' },
    { name: 'model', value: bytes.length / 2 ** 20, unit: 'MiB' },
  ];
  const note = `${layers} MatMul weights of ${SIDE} x ${SIDE} (${(bytes.length / 2 ** 20).toFixed(0)} MiB), one thread, median of ${runs} alternating runs`;
  return {
    rows: [
      row({ name: 'onnx.model_path_throughput_int8', value: r8.wall, unit: 'Melem/s', baselineName: 'quantize() with the report, per channel, same weight', baselineValue: b8.wall, better: 'higher', target: 0.6, note: `${note}; by CPU time ${r8.cpu.toFixed(0)} vs ${b8.cpu.toFixed(0)}` }),
      row({ name: 'onnx.model_path_throughput_4bit', value: r4.wall, unit: 'Melem/s', baselineName: 'quantize() per group g32 with the report + pack, same weight', baselineValue: b4.wall, better: 'higher', target: 0.5, note: `MatMulNBits, ${note}; by CPU time ${r4.cpu.toFixed(0)} vs ${b4.cpu.toFixed(0)}` }),
    ],
    details,
  };
}

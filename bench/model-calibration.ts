import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import { calibrateActivations, type ActivationCalibration } from '../src/onnx/activations/calibrate.js';
import { encodeNpy } from '../src/codecs/npy.js';
import { encodeNpz } from '../src/codecs/npz.js';
import { calibrationSamplesFromNpz, randomCalibrationSamples, type CalibrationSamples } from '../src/onnx/activations/calibration-data.js';
import { HostRuns } from '../src/onnx/activations/host-runs.js';
import { attrs, floatTensor, graph, model, node, valueInfo } from '../src/onnx/graph/build.js';
import { encodeModelBytes } from '../src/onnx/proto/encode.js';
import { DataType, type OnnxModel, type OnnxNode, type OnnxTensor } from '../src/onnx/proto/model.js';
import { row, type BenchOptions, type ScenarioResult } from './lib/rows.js';
import { median } from './lib/stats.js';

// Model calibration throughput: samples per second through calibrateActivations (one
// onnxruntime session, optimization off, every activation exposed and reduced) against the
// float model's own inference rate on the same samples (a plain session with onnxruntime's
// default optimization, one intra-op thread: what a user deploying the float model gets).
// The model is a ResNet-style conv net built in code (stem, 4 residual stages, pool, Gemm), a
// batch of one 3 x 96 x 96 image per sample. The row is the service's path: the calibration
// runs in the onnxruntime host process (host-runs.ts) on samples handed over as a user's .npz
// is (staged to a file, read one sample at a time); the same call in this thread, the path
// before the host, alternates with it as a detail.

function randn(n: number, seed: number, scale: number): Float32Array {
  let s = seed >>> 0 || 1;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 1) / 4294967297;
  return Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()) * scale);
}

function resnetLike(): { model: OnnxModel; activations: string[] } {
  const nodes: OnnxNode[] = [];
  const inits: OnnxTensor[] = [];
  const activations = ['x'];
  let seed = 1;
  const conv = (input: string, cin: number, cout: number, k: number, stride: number, out: string) => {
    const w = `${out}_W`;
    inits.push(floatTensor(w, [cout, cin, k, k], randn(cout * cin * k * k, seed++, Math.sqrt(2 / (cin * k * k)))));
    inits.push(floatTensor(`${out}_B`, [cout], randn(cout, seed++, 0.05)));
    const p = (k - 1) >> 1;
    nodes.push(node('Conv', [input, w, `${out}_B`], [out], { name: out, attributes: [attrs.ints('kernel_shape', [k, k]), attrs.ints('strides', [stride, stride]), attrs.ints('pads', [p, p, p, p])] }));
    activations.push(out);
    return out;
  };
  const relu = (input: string, out: string) => {
    nodes.push(node('Relu', [input], [out], { name: out }));
    activations.push(out);
    return out;
  };
  let t = relu(conv('x', 3, 32, 3, 2, 'stem'), 'stem_r');
  let c = 32;
  for (const [stage, cout, stride] of [[1, 32, 1], [2, 64, 2], [3, 128, 2], [4, 256, 2]] as const) {
    const a = relu(conv(t, c, cout, 3, stride, `s${stage}a`), `s${stage}a_r`);
    const b = conv(a, cout, cout, 3, 1, `s${stage}b`);
    const skip = stride === 1 && c === cout ? t : conv(t, c, cout, 1, stride, `s${stage}skip`);
    nodes.push(node('Add', [b, skip], [`s${stage}add`], { name: `s${stage}add` }));
    activations.push(`s${stage}add`);
    t = relu(`s${stage}add`, `s${stage}_r`);
    c = cout;
  }
  nodes.push(node('GlobalAveragePool', [t], ['pool'], { name: 'pool' }), node('Flatten', ['pool'], ['flat'], { name: 'flat' }));
  inits.push(floatTensor('fc_W', [10, c], randn(10 * c, seed++, 1 / Math.sqrt(c))), floatTensor('fc_B', [10], new Float32Array(10)));
  nodes.push(node('Gemm', ['flat', 'fc_W', 'fc_B'], ['y'], { name: 'fc', attributes: [attrs.int('transB', 1)] }));
  activations.push('pool', 'flat', 'y');
  const g = graph({ nodes, initializers: inits, inputs: [valueInfo('x', DataType.float32, [1, 3, 96, 96])], outputs: [valueInfo('y', DataType.float32, [1, 10])] });
  return { model: model(g, { opset: 17 }), activations };
}

export async function run(o: BenchOptions): Promise<ScenarioResult> {
  const { model: m, activations } = resnetLike();
  const count = o.quick ? 16 : 32;
  // Generated once, so neither loop pays for making N(0, 1) data.
  const random = randomCalibrationSamples(m, count, {});
  const cached = Array.from({ length: count }, (_, i) => random.feeds(i));
  const samples: CalibrationSamples = { ...random, feeds: (i) => cached[i]! };
  const flat = new Float32Array(count * 3 * 96 * 96);
  cached.forEach((f, i) => flat.set(f.x!.data as Float32Array, i * 3 * 96 * 96));
  const user = calibrationSamplesFromNpz(encodeNpz([{ name: 'x.npy', data: encodeNpy(flat, '<f4', [count, 1, 3, 96, 96]) }]), m, { maxBytes: 2 ** 30, maxSamples: 4096 });
  const runs = new HostRuns({ model: m, bytes: encodeModelBytes(m), files: [] });
  const hosted: number[] = [];
  const hostedWhole: number[] = [];
  const hostedRatios: number[] = [];
  // The float model's own rate: the same samples through a default session (created once, as a
  // deployed model's is). The row's calibration rate is per sample once calibrateActivations'
  // session is up (from the first sample's callback to the last); the whole call, with
  // augmenting the graph and creating its session, is a detail. The two alternate, so load on
  // the shared machine hits both alike; the row takes the medians.
  const session = await ort.InferenceSession.create(encodeModelBytes(m), { intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 3 });
  const infer: number[] = [];
  const calib: number[] = [];
  const whole: number[] = [];
  const ratios: number[] = [];
  const rounds = Math.max(5, o.runs);
  try {
    for (let i = 0; i < count; i++) await session.run(samples.feeds(i));
    await calibrateActivations(m, activations, samples, { method: 'minmax' });
    await runs.calibrate(m, activations, user, { method: 'minmax' });
    for (let round = 0; round < rounds; round++) {
      let t0 = performance.now();
      for (let i = 0; i < count; i++) await session.run(samples.feeds(i));
      infer.push((count * 1000) / (performance.now() - t0));
      t0 = performance.now();
      let first = 0;
      let last = 0;
      await calibrateActivations(m, activations, samples, {
        method: 'minmax',
        onSample: (done) => {
          if (done === 1) first = performance.now();
          last = performance.now();
        },
      });
      whole.push(performance.now() - t0);
      calib.push(((count - 1) * 1000) / (last - first));
      ratios.push(calib.at(-1)! / infer.at(-1)!);
      t0 = performance.now();
      await runs.calibrate(m, activations, user, {
        method: 'minmax',
        onSample: (done) => {
          if (done === 1) first = performance.now();
          last = performance.now();
        },
      });
      hostedWhole.push(performance.now() - t0);
      hosted.push(((count - 1) * 1000) / (last - first));
      hostedRatios.push(hosted.at(-1)! / infer.at(-1)!);
    }
  } finally {
    await session.release();
    runs.dispose();
  }
  const rate = async (method: ActivationCalibration) => {
    const t0 = performance.now();
    await calibrateActivations(m, activations, samples, { method });
    return (count * 1000) / (performance.now() - t0);
  };
  const details = [
    { name: 'minmax in the onnxruntime host: median of the per-round ratios', value: median(hostedRatios), unit: '×' },
    { name: `minmax in the onnxruntime host: the whole call on ${count} samples (staging, augment, session, runs)`, value: median(hostedWhole), unit: 'ms' },
    { name: 'minmax in this thread (no host; the path before): samples per second', value: median(calib), unit: 'samples/s' },
    { name: 'minmax in this thread: median of the per-round ratios', value: median(ratios), unit: '×' },
    { name: `minmax in this thread: the whole calibrateActivations call on ${count} samples (augment, session, runs)`, value: median(whole), unit: 'ms' },
    { name: 'minmax: host rate / this-thread rate, same rounds', value: median(hosted.map((h, i) => h / calib[i]!)), unit: '×' },
  ];
  for (const method of ['percentile', 'entropy', 'mse'] as const) {
    details.push({ name: `${method}: samples per second (same model and samples, one pass)`, value: await rate(method), unit: 'samples/s' });
  }
  return {
    rows: [
      row({
        name: 'onnx.calibration_samples_per_s',
        value: median(hosted),
        unit: 'samples/s',
        baselineName: 'float model inference (default optimization)',
        baselineValue: median(infer),
        better: 'higher',
        target: 0.5,
        note: `minmax over ${activations.length} activations of a ResNet-style conv net (3 x 96 x 96, ${count} samples from a staged .npz, optimization off as onnxruntime's calibrator, 1 thread) in the onnxruntime host process as the service runs it, per sample once its session is up; ratio = calibration rate / inference rate`,
      }),
    ],
    details,
  };
}

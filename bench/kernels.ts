import * as ort from 'onnxruntime-node';
import { calibrate, dequantizeWith, quantize, quantizeIntegers, quantizeValues, quantizeWith, type QuantSpec } from '../src/core/quantize.js';
import { givenParams } from '../src/core/given.js';
import { pack } from '../src/core/pack.js';
import { arenaAlloc, tensorFloats } from '../src/core/kernels/arenas.js';
import { arenaOf, CHUNK, getKernels, LAYOUT, resetArena } from '../src/core/kernels/runtime.js';
import { absMaxQuantizeModel, dynamicQuantizeModel, perAxisQuantizeModel } from './lib/onnx-graphs.js';
import { row, type BenchOptions, type Detail, type ScenarioResult } from './lib/rows.js';
import { melems, timeMedian } from './lib/stats.js';
import { gaussian } from './lib/tensors.js';

// Kernel throughput on one thread against onnxruntime-node (intra-op threads 1) and a plain
// copy, measured in this run. Each job reads a Float32Array and writes its integers into an
// array it is given (onnxruntime's outputs come from its own arena, reused from run to run);
// what allocating a fresh output costs here (first-touch page faults) is printed beside.
// Our input lives in a kernel arena, where the service reads request bodies (NPY, raw,
// base64): the figures for the same jobs on an ordinary Float32Array, whose every pass is
// staged through the thread's kernel memory, are printed beside as "staged".

const SPEC: QuantSpec = { bits: 8, scheme: 'symmetric', granularity: 'per_tensor', axis: 0, groupSize: 128, calibration: 'minmax', percentile: 99.99 };
const ORT_OPTIONS: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential' };

/** n int8 or uint8 values in x's arena. */
function beside<T extends Int8Array | Uint8Array>(x: Float32Array, n: number, Ctor: new (b: ArrayBufferLike, off: number, n: number) => T): T {
  const bytes = arenaAlloc(x, n);
  if (!bytes) throw new Error('no room in the benchmark tensor\'s arena');
  return new Ctor(bytes.buffer, bytes.byteOffset, n);
}

function mismatches(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

export async function run(o: BenchOptions): Promise<ScenarioResult> {
  const side = o.quick ? 2048 : 4096;
  const n = side * side;
  const x = gaussian(n, 7);
  const xa = tensorFloats(n);
  if (!arenaOf(xa)) throw new Error('no kernel arena for the benchmark tensor');
  xa.set(x);
  const details: Detail[] = [];
  const rate = async (fn: () => unknown) => melems(n, await timeMedian(fn, o.runs));

  const dst = new Float32Array(n);
  const copy = await rate(() => dst.set(x));

  // int8 symmetric per tensor
  const sym = await ort.InferenceSession.create(absMaxQuantizeModel(n), ORT_OPTIONS);
  const X = new ort.Tensor('float32', x, [n]);
  const ortSym = await rate(() => sym.run({ X }));
  const q8 = new Int8Array(n);
  const u8 = new Uint8Array(n);
  // The outputs beside the input in its arena, where the service's quantize writes them.
  const q8a = beside(xa, n, Int8Array);
  const u8a = beside(xa, n, Uint8Array);
  const int8 = await rate(() => quantizeIntegers(xa, [n], SPEC, q8a));
  // quantize() with the error report, as the service runs it on a body in an arena: it puts
  // its integers beside the tensor (arenaAlloc), here over u8a's bytes, the arena's top set
  // back before each run as a request's recycled arena is (else the arena would fill and
  // later runs write ordinary arrays, paying first-touch page faults the service does not).
  const arena = arenaOf(xa)!;
  const withReport = (spec: QuantSpec, shape: number[]) => () => {
    resetArena(arena, u8a.byteOffset);
    quantize(xa, shape, spec);
  };
  const int8Report = await rate(withReport(SPEC, [n]));
  details.push({ name: 'int8 per tensor, staged (input an ordinary Float32Array)', value: await rate(() => quantizeIntegers(x, [n], SPEC, q8)), unit: 'Melem/s' });
  details.push({ name: 'int8 per tensor, allocating the output each run', value: await rate(() => quantizeIntegers(xa, [n], SPEC)), unit: 'Melem/s' });
  const ortQ = (await sym.run({ X })).Q!.data as Int8Array;
  details.push({ name: 'int8 per tensor: elements differing from onnxruntime', value: mismatches(ortQ, quantizeValues(x, calibrate(x, [n], SPEC)).q), unit: 'count' });
  details.push({ name: 'int8 per tensor with the error report (quantize())', value: int8Report, unit: 'Melem/s' });

  // uint8 asymmetric per tensor
  const dyn = await ort.InferenceSession.create(dynamicQuantizeModel(n), ORT_OPTIONS);
  const ortDyn = await rate(() => dyn.run({ X }));
  const asymSpec: QuantSpec = { ...SPEC, scheme: 'asymmetric' };
  const uint8 = await rate(() => quantizeIntegers(xa, [n], asymSpec, u8a));
  details.push({ name: 'uint8 asymmetric per tensor, staged', value: await rate(() => quantizeIntegers(x, [n], asymSpec, u8)), unit: 'Melem/s' });
  const dynOut = await dyn.run({ X });
  details.push({ name: 'uint8 per tensor: elements differing from DynamicQuantizeLinear', value: mismatches(dynOut.Y!.data as Uint8Array, quantizeValues(x, calibrate(x, [n], asymSpec)).q), unit: 'count' });

  // int8 per channel, [side, side], axis 0; onnxruntime is given the scales
  const channelSpec: QuantSpec = { ...SPEC, granularity: 'per_channel', axis: 0 };
  const channelParams = calibrate(x, [side, side], channelSpec);
  const perAxis = await ort.InferenceSession.create(perAxisQuantizeModel(side, side), ORT_OPTIONS);
  const X2 = new ort.Tensor('float32', x, [side, side]);
  const S = new ort.Tensor('float32', channelParams.scale, [side]);
  const ortAxis = await rate(() => perAxis.run({ X: X2, S }));
  const perChannel = await rate(() => quantizeIntegers(xa, [side, side], channelSpec, q8a));
  details.push({ name: 'int8 per channel, staged', value: await rate(() => quantizeIntegers(x, [side, side], channelSpec, q8)), unit: 'Melem/s' });
  details.push({ name: 'int8 per channel: elements differing from QuantizeLinear per axis', value: mismatches((await perAxis.run({ X: X2, S })).Q!.data as Int8Array, quantizeValues(x, channelParams).q), unit: 'count' });
  // The same job as onnxruntime's: scales given (POST /v1/quantize with scale), no calibration.
  const given = { data: channelParams.scale, shape: [side] };
  const perChannelGiven = await rate(() => quantizeValues(xa, givenParams([side, side], channelSpec, given), q8a));
  const givenWithReport = await rate(() => quantizeWith(xa, givenParams([side, side], channelSpec, given)));

  // int4 symmetric per group of 128 along the last axis, packed two per byte
  const groupSpec: QuantSpec = { ...SPEC, bits: 4, granularity: 'per_group', axis: -1, groupSize: 128 };
  // The packed bytes go beside the integers in the arena (pack's arenaAlloc), its top set
  // back before each run as a request's arena is: else the arena fills after one run and
  // every later one packs into a new array, timing first-touch page faults and a staging copy.
  const int4Of = (input: Float32Array, into: Int8Array) => () => {
    resetArena(arena, u8a.byteOffset);
    const { params, q } = quantizeIntegers(input, [side, side], groupSpec, into);
    pack(q, params.dtype);
  };
  const int4 = await rate(int4Of(xa, q8a));
  details.push({ name: 'int4 per group, staged', value: await rate(int4Of(x, q8)), unit: 'Melem/s' });
  details.push({ name: 'int4 per group of 128 with the error report (quantize(), integers unpacked)', value: await rate(withReport(groupSpec, [side, side])), unit: 'Melem/s' });

  // Groups of 32 along the last axis, llama.cpp's block size: int8 (as q8_0), 4-bit
  // symmetric (q4_0) and asymmetric (q4_1) with packing. ggml's test-quantize-perf is not
  // run here (it is built by hand, bench/README.md); GGML_Q8_0 / GGML_Q4_0 (Melem/s) set its
  // figures as the baselines when given.
  const g32: QuantSpec = { ...SPEC, granularity: 'per_group', axis: -1, groupSize: 32 };
  const int8g32 = await rate(() => quantizeIntegers(xa, [side, side], g32, q8a));
  const int4g32Of = (spec: QuantSpec) => () => {
    resetArena(arena, u8a.byteOffset);
    const { params, q } = quantizeIntegers(xa, [side, side], spec, q8a);
    pack(q, params.dtype);
  };
  const int4g32 = await rate(int4g32Of({ ...g32, bits: 4 }));
  details.push({ name: 'uint4 asymmetric per group of 32 with packing (as q4_1)', value: await rate(int4g32Of({ ...g32, bits: 4, scheme: 'asymmetric' })), unit: 'Melem/s' });
  details.push({ name: 'int8 per group of 32 with the error report (quantize())', value: await rate(withReport(g32, [side, side])), unit: 'Melem/s' });
  details.push({ name: 'int8 per channel (axis 0) with the error report (quantize())', value: await rate(withReport(channelSpec, [side, side])), unit: 'Melem/s' });
  const ggml = (name: string) => {
    const v = Number(process.env[name]);
    return Number.isFinite(v) && v > 0 ? v : null;
  };

  // dequantize int8 per tensor into a preallocated output, against a copy into one
  const params = calibrate(x, [n], SPEC);
  const { q } = quantizeValues(x, params);
  const out = new Float32Array(n);
  const dequant = await rate(() => dequantizeWith(q, params, out));
  const outArena = tensorFloats(n);
  details.push({ name: 'dequantize into an arena (the kernel writes the floats in place; the service does not use it)', value: await rate(() => dequantizeWith(q, params, outArena)), unit: 'Melem/s' });

  // What bounds the figures: the kernels on data already in their memory, and the staging copy.
  const k = getKernels();
  const kw = LAYOUT.k >> 2;
  k.f32.fill(params.scale[0]!, kw, kw + 4);
  const staged = x.subarray(0, CHUNK);
  k.f32.set(staged, LAYOUT.x >> 2);
  const reps = n / CHUNK;
  const inCache = async (fn: () => void) => melems(n, await timeMedian(() => { for (let r = 0; r < reps; r++) fn(); }, o.runs));
  const p0 = LAYOUT.p[0];
  const p1 = LAYOUT.p[1];
  k.f32[p0 >> 2] = params.scale[0]!;
  k.i32[p1 >> 2] = 0;
  k.i32.fill(0x4b400000, kw + 16, kw + 20);
  k.i32.fill(0, kw + 20, kw + 24);
  k.i32[kw + 25] = 1;
  // The rest of the span constants (quantize.wat setk for zero point 0): lo, hi, mz.
  k.f32.fill(-128, kw + 4, kw + 8);
  k.f32.fill(127, kw + 8, kw + 12);
  k.f32.fill(1.5 * 2 ** 23, kw + 12, kw + 16);
  // quantize.ts setup(): the float32 abs mask the error sums use (accumulator block +144).
  k.i32.fill(0x7fffffff, (LAYOUT.acc + 144) >> 2, (LAYOUT.acc + 160) >> 2);
  details.push({
    name: 'bound: staging copy of the tensor into the kernels\' memory (Float32Array.set, 256 KiB pieces)',
    value: melems(n, await timeMedian(() => { for (let s0 = 0; s0 < n; s0 += CHUNK) k.f32.set(x.subarray(s0, s0 + CHUNK), LAYOUT.x >> 2); }, o.runs)),
    unit: 'Melem/s',
  });
  // Its ranges go to other areas than p0 / p1, which hold the quantize kernels' scale and
  // zero point: a range written there (a negative scale, a float's bits as the zero point)
  // made every block of the kernel with error sums clip and take its exact path.
  const [, , p2, p3] = LAYOUT.p;
  details.push({ name: 'bound: min/max kernel on staged data', value: await inCache(() => k.calibrate.runs(LAYOUT.x, 1, 1, CHUNK, CHUNK, p2, p3, 0)), unit: 'Melem/s' });
  details.push({ name: 'bound: int8 quantize kernel on staged data', value: await inCache(() => k.quantize.runs(0, LAYOUT.x, LAYOUT.q, 1, 1, CHUNK, CHUNK, p0, p1, 0, -128, 127, 0, LAYOUT.k, LAYOUT.acc)), unit: 'Melem/s' });
  details.push({ name: 'bound: int8 quantize kernel with error sums on staged data', value: await inCache(() => k.quantize.runs(1, LAYOUT.x, LAYOUT.q, 1, 1, CHUNK, CHUNK, p0, p1, 0, -128, 127, 0, LAYOUT.k, LAYOUT.acc)), unit: 'Melem/s' });
  details.push({ name: 'copy floor (Float32Array.set into a preallocated array)', value: copy, unit: 'Melem/s' });
  await Promise.all([sym.release(), dyn.release(), perAxis.release()]);

  const note = `${n} float32 elements in a kernel arena, one thread; onnxruntime-node intraOpNumThreads 1`;
  return {
    rows: [
      row({ name: 'kernel.int8_sym_per_tensor', value: int8, unit: 'Melem/s', baselineName: 'onnxruntime Abs→ReduceMax→Div→QuantizeLinear', baselineValue: ortSym, better: 'higher', target: 1.8, note: `${note}; min-max calibration + quantize into a given array, no error report (quantize() with it: ${int8Report.toFixed(0)} Melem/s)` }),
      row({ name: 'kernel.uint8_asym_per_tensor', value: uint8, unit: 'Melem/s', baselineName: 'onnxruntime DynamicQuantizeLinear', baselineValue: ortDyn, better: 'higher', target: 1.1, note }),
      row({ name: 'kernel.int8_per_channel', value: perChannel, unit: 'Melem/s', baselineName: 'onnxruntime QuantizeLinear per axis (scales given)', baselineValue: ortAxis, better: 'higher', target: 0.9, note: `[${side}, ${side}] axis 0, with calibration` }),
      row({ name: 'kernel.int8_per_channel_given', value: perChannelGiven, unit: 'Melem/s', baselineName: 'onnxruntime QuantizeLinear per axis (scales given)', baselineValue: ortAxis, better: 'higher', target: 0.9, note: `[${side}, ${side}] axis 0, scales given (no calibration); with the error report (quantizeWith): ${givenWithReport.toFixed(0)} Melem/s` }),
      row({ name: 'kernel.int4_per_group', value: int4, unit: 'Melem/s', baselineName: 'kernel.int8_sym_per_tensor', baselineValue: int8, better: 'higher', target: 1.0, note: `[${side}, ${side}] int4 symmetric, groups of 128 along the last axis, calibrate + quantize + pack` }),
      row({ name: 'kernel.int8_with_report', value: int8Report, unit: 'Melem/s', baselineName: 'kernel.int8_sym_per_tensor (no error report)', baselineValue: int8, better: 'higher', target: 0.8, note: `${note}; quantize(): min-max calibration, quantize, error sums in the same pass (float32 lanes, within 1e-6 of float64)` }),
      row({ name: 'kernel.int8_per_group_g32', value: int8g32, unit: 'Melem/s', baselineName: 'ggml quantize_row_q8_0 (GGML_Q8_0, measured by hand)', baselineValue: ggml('GGML_Q8_0'), better: 'higher', target: 1.0, note: `[${side}, ${side}] int8 symmetric, groups of 32 along the last axis, calibrate + quantize, no error report` }),
      row({ name: 'kernel.int4_per_group_g32', value: int4g32, unit: 'Melem/s', baselineName: 'ggml quantize_row_q4_0 (GGML_Q4_0, measured by hand)', baselineValue: ggml('GGML_Q4_0'), better: 'higher', target: 2.0, note: `[${side}, ${side}] int4 symmetric, groups of 32 along the last axis, calibrate + quantize + pack` }),
      row({ name: 'kernel.dequantize', value: dequant, unit: 'Melem/s', baselineName: 'copy floor (Float32Array.set)', baselineValue: copy, better: 'higher', target: 0.7, note: 'int8 per tensor into a preallocated Float32Array' }),
    ],
    details,
  };
}

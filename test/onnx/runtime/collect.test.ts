import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { encodeNpy } from '../../../src/codecs/npy.js';
import { encodeNpz } from '../../../src/codecs/npz.js';
import { calibrateActivations } from '../../../src/onnx/activations/calibrate.js';
import { calibrationSamplesFromNpz, randomCalibrationSamples } from '../../../src/onnx/activations/calibration-data.js';
import { graph, model, node, valueInfo } from '../../../src/onnx/graph/build.js';
import { encodeModelBytes } from '../../../src/onnx/proto/encode.js';
import { DataType } from '../../../src/onnx/proto/model.js';
import { runWithIntermediates } from '../../../src/onnx/runtime/collect.js';
import { entropyThreshold, mseThreshold, percentileThreshold } from '../../../src/core/activation-thresholds.js';
import { AbsHistogram, SignedHistogram } from '../../../src/core/histogram.js';
import { intParamsOf } from '../../../src/core/quantize.js';
import { cancel, cancelFlag } from '../../../src/pool/cancel.js';
import { randn } from '../models.js';
import { CALIB_TENSORS, calibNet, calibNetWithOutputs, valuesOf } from '../activations/calib-models.js';

// The collector against an independent run: the same net with the tensors declared as its
// own typed outputs, run in a plain onnxruntime session (default optimization), min and max
// taken here. Samples differ in batch size to show each sample runs as its own batch.

const N = 5;
function npz(): Uint8Array {
  // [N, 2, 4, 10, 10]: each sample a batch of two; a heavy-tailed value in sample 3.
  const xs = randn(N * 800, 99);
  xs[3 * 800 + 17] = 40;
  return encodeNpz([
    { name: 'x.npy', data: encodeNpy(xs, '<f4', [N, 2, 4, 10, 10]) },
    { name: 'shift.npy', data: encodeNpy(BigInt64Array.from({ length: N }, (_, i) => BigInt(i - 2)), '<i8', [N, 1]) },
  ]);
}

async function reference(samples: ReturnType<typeof calibrationSamplesFromNpz>): Promise<Map<string, { min: number; max: number }>> {
  const s = await ort.InferenceSession.create(encodeModelBytes(calibNetWithOutputs()), { logSeverityLevel: 3 });
  const out = new Map<string, { min: number; max: number }>();
  const note = (name: string, vals: number[]) => {
    const o = out.get(name) ?? { min: Infinity, max: -Infinity };
    for (const v of vals) {
      o.min = Math.min(o.min, v);
      o.max = Math.max(o.max, v);
    }
    out.set(name, o);
  };
  try {
    for (let i = 0; i < samples.count; i++) {
      const feeds = samples.feeds(i);
      const r = await s.run(feeds);
      note('x', valuesOf(feeds.x!));
      for (const name of CALIB_TENSORS.filter((n) => n !== 'x')) note(name, valuesOf(r[name]!));
    }
  } finally {
    await s.release();
  }
  return out;
}

const LIMITS = { maxBytes: 1 << 24, maxSamples: 64 };

describe('runWithIntermediates and minmax calibration', () => {
  it('gives each tensor the min and max an independent onnxruntime run finds, float16 included', async () => {
    const samples = calibrationSamplesFromNpz(npz(), calibNet(), LIMITS);
    const expected = await reference(samples);
    const progress: number[] = [];
    const ranges = await calibrateActivations(calibNet(), CALIB_TENSORS, samples, { method: 'minmax', onSample: (done, total) => progress.push(done, total) });
    assert.deepEqual(progress, [1, 5, 2, 5, 3, 5, 4, 5, 5, 5]);
    for (const name of CALIB_TENSORS) {
      const r = ranges.get(name)!;
      const e = expected.get(name)!;
      // The independent run may fuse (default optimization): allow float32 rounding of the conv sums.
      const tol = 1e-5 * Math.max(1, Math.abs(e.min), Math.abs(e.max));
      assert.ok(Math.abs(r.min - e.min) <= tol && Math.abs(r.max - e.max) <= tol, `${name}: got [${r.min}, ${r.max}], expected [${e.min}, ${e.max}]`);
      assert.equal(r.observedMin, r.min);
      assert.equal(r.observedMax, r.max);
    }
    assert.equal(ranges.get('x')!.max, 40);
    assert.equal(ranges.get('r')!.min, 0);
    assert.equal(ranges.get('c1')!.values, N * 2 * 8 * 100);
    const sym = await calibrateActivations(calibNet(), ['c1'], samples, { method: 'minmax', symmetric: true });
    const c1 = ranges.get('c1')!;
    const m = Math.max(-c1.min, c1.max);
    assert.deepEqual([sym.get('c1')!.min, sym.get('c1')!.max], [-m, m]);
  });

  it('percentile, entropy and mse reduce each sample into the histograms an independent run\'s values give', async () => {
    const samples = calibrationSamplesFromNpz(npz(), calibNet(), LIMITS);
    // The reference: the same net with 'r' and 'p' as declared outputs, default optimization, histograms fed here.
    const s = await ort.InferenceSession.create(encodeModelBytes(calibNetWithOutputs()), { logSeverityLevel: 3 });
    const hist = { abs: new AbsHistogram(2048), signed: new SignedHistogram(2048), entropy: new SignedHistogram(128) };
    try {
      for (let i = 0; i < samples.count; i++) {
        const r = Float32Array.from(valuesOf((await s.run(samples.feeds(i))).r!));
        hist.abs.add(r);
        hist.signed.add(r);
        hist.entropy.add(r);
      }
    } finally {
      await s.release();
    }
    const got = async (method: 'percentile' | 'entropy' | 'mse', extra: object = {}) => {
      const m = await calibrateActivations(calibNet(), ['r'], samples, { method, ...extra });
      const r = m.get('r')!;
      return [r.min, r.max];
    };
    const near = (a: number[], b: number[], what: string) => {
      // Conv sums may differ in the last bit between the optimized and the unoptimized run: a value can sit one bin over.
      const bin = (hist.signed.max * 2) / 1024;
      assert.ok(Math.abs(a[0]! - b[0]!) <= bin && Math.abs(a[1]! - b[1]!) <= bin, `${what}: ${a} vs ${b}`);
    };
    const pct = percentileThreshold(hist.abs, 99.9, true);
    near(await got('percentile', { percentile: 99.9 }), [pct.lo, pct.hi], 'percentile');
    const asym = percentileThreshold(hist.signed, 99.9, false);
    near(await got('percentile', { percentile: 99.9, symmetric: false }), [asym.lo, asym.hi], 'asymmetric percentile');
    const ent = entropyThreshold(hist.entropy, 128);
    near(await got('entropy'), [ent.lo, ent.hi], 'entropy');
    const mse = mseThreshold(hist.signed, intParamsOf(8, 'asymmetric'));
    near(await got('mse'), [mse.lo, mse.hi], 'mse');
    // ReLU output: percentile clips below the max and never below the observed 0.
    const [lo, hi] = await got('percentile', { percentile: 99.9 });
    assert.ok(lo === 0 && hi < hist.abs.max, `${lo} ${hi}`);
    await assert.rejects(got('entropy', { numBins: 7 }), /num_bins must be an even integer/);
    await assert.rejects(got('percentile', { percentile: 0 }), /percentile must be in \(0, 100\]/);
    await assert.rejects(got('mse', { bits: 4 }), /bits must be 8 or 16/);
  });

  it('hands over one sample at a time, converted to float32, with the dims of that sample', async () => {
    const samples = randomCalibrationSamples(calibNet(), 3, { batch: 3 });
    const seen: string[] = [];
    await runWithIntermediates(calibNet(), ['h16', 'x'], samples, async (i, values) => {
      await new Promise((r) => setImmediate(r));
      for (const [name, v] of values) {
        assert.ok(v.data instanceof Float32Array, name);
        seen.push(`${i}:${name}:${v.dims.join('x')}`);
      }
    });
    assert.deepEqual(seen, ['0:h16:3x8x5x5', '0:x:3x4x10x10', '1:h16:3x8x5x5', '1:x:3x4x10x10', '2:h16:3x8x5x5', '2:x:3x4x10x10']);
  });

  it('stops between samples when cancelled, by AbortSignal or by the pool flag', async () => {
    const samples = randomCalibrationSamples(calibNet(), 6, {});
    const ac = new AbortController();
    let calls = 0;
    await assert.rejects(
      runWithIntermediates(calibNet(), ['r'], samples, () => {
        if (++calls === 2) ac.abort();
      }, { signal: ac.signal }),
      (err: Error & { code?: string }) => err.code === 'QUANT_ERR_ABORTED',
    );
    assert.equal(calls, 2);
    const flag = cancelFlag();
    let n = 0;
    await assert.rejects(
      calibrateActivations(calibNet(), ['r'], samples, { method: 'minmax', cancel: flag, onSample: (done) => done === 3 && cancel(flag) }).then(() => n++),
      (err: Error & { code?: string }) => err.code === 'QUANT_ERR_ABORTED',
    );
    assert.equal(n, 0);
  });

  it('answers 400 for tensors the main graph lacks, and with onnxruntime\'s reason for a model it cannot load or run', async () => {
    const samples = randomCalibrationSamples(calibNet(), 1, {});
    const is400 = (pattern: RegExp) => (err: Error & { statusCode?: number }) => err.statusCode === 400 && pattern.test(err.message);
    await assert.rejects(runWithIntermediates(calibNet(), ['nope'], samples, () => {}), is400(/no node of the model's main graph produces a tensor 'nope'/));
    await assert.rejects(runWithIntermediates(calibNet(), ['W1'], samples, () => {}), is400(/tensor 'W1' is an initializer/));
    const broken = model(
      graph({ nodes: [node('NoSuchOp', ['x'], ['y'])], inputs: [valueInfo('x', DataType.float32, [2])], outputs: [valueInfo('y', DataType.float32, [2])] }),
    );
    const one = randomCalibrationSamples(broken, 1, {});
    await assert.rejects(runWithIntermediates(broken, ['y'], one, () => {}), is400(/onnxruntime cannot load the model for calibration: .*NoSuchOp/));
    // Loads, but fails at run time: a Reshape to a shape the data does not have.
    const reshape = model(
      graph({
        nodes: [node('Reshape', ['x', 's'], ['y'])],
        inputs: [valueInfo('x', DataType.float32, ['n']), valueInfo('s', DataType.int64, [1])],
        outputs: [valueInfo('y', DataType.float32, undefined)],
      }),
    );
    const bad = calibrationSamplesFromNpz(
      encodeNpz([
        { name: 'x', data: encodeNpy(new Float32Array(6), '<f4', [2, 3]) },
        { name: 's', data: encodeNpy(BigInt64Array.from([3n, 5n]), '<i8', [2, 1]) },
      ]),
      reshape,
      LIMITS,
    );
    const done: number[] = [];
    await assert.rejects(runWithIntermediates(reshape, ['y'], bad, (i) => void done.push(i)), is400(/cannot run the model on calibration sample 1: /));
    assert.deepEqual(done, [0]);
  });
});

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { encodeNpy } from '../../../src/codecs/npy.js';
import { encodeNpz } from '../../../src/codecs/npz.js';
import { calibrationSamplesFromNpz, randomCalibrationSamples, sliceSamples, type CalibrationSamples } from '../../../src/onnx/activations/calibration-data.js';
import { HostRuns, type FloatSource } from '../../../src/onnx/activations/host-runs.js';
import { quantizeDataAware, type DataAwareReport } from '../../../src/onnx/activations/quantize-data-aware.js';
import { quantizeStatic, type StaticRequest } from '../../../src/onnx/activations/quantize-static.js';
import { staticReport } from '../../../src/onnx/activations/static-report.js';
import { memoryExternalData } from '../../../src/onnx/io/external.js';
import { decodeModel } from '../../../src/onnx/proto/decode.js';
import { encodeModelBytes } from '../../../src/onnx/proto/encode.js';
import type { OnnxModel } from '../../../src/onnx/proto/model.js';
import { calibrationHost } from '../../../src/onnx/runtime/host/client.js';
import { modelQuantOptions } from '../../../src/onnx/weights/options.js';
import { convNet, gemmMlp, randn, withExternalData } from '../models.js';

// The onnxruntime host runs static calibration, the fallback's measurements, the data-aware
// statistics and the held-back comparison with the same functions this thread would run: the
// results must be identical, value for value and byte for byte, whichever way the samples
// (seeded random, or the user's arrays staged to a file) and the external data (written
// beside the staged model, or linked to files on disk) reach it.

const scratch = mkdtempSync(join(tmpdir(), 'quantd-host-runs-'));
// A staging directory of this test's own: other processes stage into /dev/shm too.
const staging = join(scratch, 'staging');
mkdirSync(staging);
process.env.ORT_STAGING_DIR = staging;
after(() => {
  rmSync(scratch, { recursive: true, force: true });
  calibrationHost().close();
});

const resnet = () => {
  const bytes = readFileSync('test/fixtures/models/static/resnet-mini.opset13.onnx');
  return { model: decodeModel(bytes), bytes };
};

function npzFor(name: string, shape: number[], seed: number): Uint8Array {
  const n = shape.reduce((a, b) => a * b, 1);
  return encodeNpz([{ name: `${name}.npy`, data: encodeNpy(randn(n, seed), '<f4', shape) }]);
}

/** What a run leaves besides timings. */
function withoutTimes<T extends object>(r: T): T {
  return JSON.parse(JSON.stringify(r, (k, v: unknown) => (/_ms$|Ms$/.test(k) ? undefined : v instanceof Map ? [...v] : v))) as T;
}

/** No staged file of these runs is left behind. */
function assertCleaned(): void {
  assert.deepEqual(readdirSync(staging), [], 'staging directories left behind');
}

async function staticBoth(float: FloatSource, samples: CalibrationSamples, req: StaticRequest) {
  const local = await quantizeStatic(float.model, samples, req);
  const runs = new HostRuns(float);
  const seen: number[] = [];
  let hosted;
  try {
    hosted = await quantizeStatic(float.model, samples, req, { runs, onCalibrating: (done) => seen.push(done) });
  } finally {
    runs.dispose();
  }
  assertCleaned();
  return { local, hosted, seen };
}

/**
 * `runs` whose `stage` request reaches a frozen host (SIGSTOP before it is sent, so it
 * cannot answer first) that is then killed: the crash lands in that stage and no other.
 */
function crashing(runs: HostRuns, stage: 'statsBatches' | 'heldBack' | 'activationErrors'): HostRuns {
  const real = runs[stage] as (...args: unknown[]) => Promise<unknown>;
  (runs as unknown as Record<string, unknown>)[stage] = (...args: unknown[]) => {
    const host = calibrationHost();
    host.warm();
    const pid = host.pid!;
    process.kill(pid, 'SIGSTOP');
    const pending = real(...args);
    process.kill(pid, 'SIGKILL');
    return pending;
  };
  return runs;
}

describe('static quantization in the onnxruntime host', () => {
  const base: StaticRequest = { activationType: 'uint8', calibration: 'minmax', weights: modelQuantOptions({ bits: 8, format: 'qdq' }), heldBack: 4 };

  for (const calibration of ['minmax', 'entropy'] as const) {
    it(`${calibration} on random samples: the same ranges, errors and model bytes as in this thread, progress per sample`, async () => {
      const r = resnet();
      const samples = randomCalibrationSamples(r.model, 10, {});
      const { local, hosted, seen } = await staticBoth({ ...r, files: [] }, samples, { ...base, calibration });
      assert.deepEqual(withoutTimes(hosted.ranges), withoutTimes(local.ranges));
      assert.deepEqual(withoutTimes(hosted.fallback.errors), withoutTimes(local.fallback.errors));
      assert.ok(Buffer.from(encodeModelBytes(hosted.fallback.quantized.model)).equals(encodeModelBytes(local.fallback.quantized.model)), 'the same quantized model');
      assert.deepEqual(seen, [1, 2, 3, 4, 5, 6]);
    });
  }

  it("the user's arrays (staged to a file) and a fallback target: the same rounds, exclusions and model", async () => {
    const r = resnet();
    const samples = calibrationSamplesFromNpz(npzFor('input', [8, 1, 3, 64, 64], 5), r.model, { maxBytes: 2 ** 26, maxSamples: 64 });
    const { local, hosted } = await staticBoth({ ...r, files: [] }, samples, { ...base, heldBack: 3, target: { snrDb: 60 } });
    assert.ok(local.fallback.rounds > 1, 'the target makes the fallback take rounds');
    const { quantized: _q, ...rest } = hosted.fallback;
    const { quantized: _l, ...expected } = local.fallback;
    assert.deepEqual(withoutTimes(rest), withoutTimes(expected));
    assert.ok(Buffer.from(encodeModelBytes(hosted.fallback.quantized.model)).equals(encodeModelBytes(local.fallback.quantized.model)));
  });
});

describe('data-aware methods in the onnxruntime host', () => {
  const ext = withExternalData(gemmMlp(), ['W1', 'W2'], 'weights.bin');
  const external = memoryExternalData(new Map([['weights.bin', ext.data]]));
  const externalData = [{ path: 'weights.bin', data: ext.data }];
  const all = calibrationSamplesFromNpz(npzFor('x', [12, 256], 9), ext.model, { maxBytes: 2 ** 26, maxSamples: 64 });

  // A job's model: on disk, its external data beside it.
  const jobDir = join(scratch, 'job');
  mkdirSync(jobDir);
  writeFileSync(join(jobDir, 'weights.bin'), ext.data);
  writeFileSync(join(jobDir, 'model.onnx'), ext.bytes);

  async function both(method: 'gptq' | 'awq' | 'imatrix', where: 'memory' | 'disk', samples: CalibrationSamples, maxHessianBytes?: number) {
    const req = { method, weights: modelQuantOptions({ bits: 4, granularity: 'per_group', groupSize: 32, format: 'matmulnbits', method }), heldBack: 3, maxHessianBytes };
    const local = await quantizeDataAware(ext.model as OnnxModel, samples, req, { external, externalData });
      const source: FloatSource = where === 'memory' ? { model: ext.model, bytes: ext.bytes, files: externalData } : { model: ext.model, path: join(jobDir, 'model.onnx'), hasExternalData: true };
    const runs = new HostRuns(source);
    const seen: [number, number][] = [];
    let hosted;
    try {
      hosted = await quantizeDataAware(ext.model, samples, req, { external, runs, onCalibrating: (d, t) => seen.push([d, t]) });
    } finally {
      runs.dispose();
    }
    assertCleaned();
    assert.deepEqual(readdirSync(jobDir).sort(), ['model.onnx', 'weights.bin'], "nothing is left in the job's directory");
    return { local, hosted, seen };
  }

  const same = (a: { result: { model: OnnxModel; tensors: unknown }; report: DataAwareReport }, b: typeof a) => {
    assert.deepEqual(withoutTimes(b.report), withoutTimes(a.report));
    assert.deepEqual(withoutTimes(b.result.tensors as object), withoutTimes(a.result.tensors as object));
    assert.ok(Buffer.from(encodeModelBytes(b.result.model)).equals(encodeModelBytes(a.result.model)), 'the same quantized model');
  };

  it('gptq, external data written beside the staged model, K×K sums in two batches: identical', async () => {
    // 512·512·8 bytes for W2's input r: a budget that holds one activation at a time.
    const { local, hosted, seen } = await both('gptq', 'memory', all, 8 * 512 * 512 + 8);
    assert.equal(local.report.statistics.passes, 2);
    same(local, hosted);
    assert.deepEqual(seen.at(-1), [18, 18], 'progress counts the samples of every pass');
  });

  it("awq and imatrix on a job's model (on disk, external data beside it), a slice of the samples: identical", async () => {
    for (const method of ['awq', 'imatrix'] as const) {
      const { local, hosted } = await both(method, 'disk', sliceSamples(all, 2, 9));
      same(local, hosted);
    }
  });

  it('gptq and awq on Conv weights (patch Hessians per conv group): identical', async () => {
    const c = convNet();
    const samples = randomCalibrationSamples(c.model, 8, {});
    for (const method of ['gptq', 'awq'] as const) {
      const req = { method, weights: modelQuantOptions({ bits: 8, granularity: 'per_channel', format: 'qdq', method }), heldBack: 2 };
      const local = await quantizeDataAware(c.model, samples, req);
      const runs = new HostRuns({ model: c.model, bytes: c.bytes, files: [] });
      try {
        same(local, await quantizeDataAware(c.model, samples, req, { runs }));
      } finally {
        runs.dispose();
      }
      assert.ok(local.result.tensors.length > 0, `${method} quantized the Conv weights`);
    }
  });
});

describe('a crash of the onnxruntime host in the data-aware runs', () => {
  const m = gemmMlp();
  const samples = calibrationSamplesFromNpz(npzFor('x', [8, 256], 5), m.model, { maxBytes: 2 ** 26, maxSamples: 64 });
  const req = { method: 'gptq' as const, weights: modelQuantOptions({ bits: 4, granularity: 'per_group', groupSize: 32, format: 'matmulnbits', method: 'gptq' }), heldBack: 3 };

  const crashIn = (stage: 'statsBatches' | 'heldBack') => crashing(new HostRuns({ model: m.model, bytes: m.bytes, files: [] }), stage);

  it('while gathering the statistics: the request fails with QUANT_ERR_ONNX naming that stage', async () => {
    const runs = crashIn('statsBatches');
    try {
      await assert.rejects(quantizeDataAware(m.model, samples, req, { runs }), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'QUANT_ERR_ONNX');
        assert.match(err.message, /^onnxruntime crashed \(SIGKILL\) gathering the activation statistics/);
        return true;
      });
    } finally {
      runs.dispose();
    }
    assertCleaned();
  });

  it('in the held-back comparison: the model is the one a full run makes, the report says the comparison did not run and why', async () => {
    const local = await quantizeDataAware(m.model, samples, req);
    const runs = crashIn('heldBack');
    let crashed;
    try {
      crashed = await quantizeDataAware(m.model, samples, req, { runs });
    } finally {
      runs.dispose();
    }
    assertCleaned();
    assert.equal(local.report.comparison.status, 'ok');
    assert.ok(local.report.outputs.length > 0);
    assert.equal(crashed.report.comparison.status, 'error');
    assert.match((crashed.report.comparison as { reason: string }).reason, /^onnxruntime crashed \(SIGKILL\) measuring the quantized model on the held-back samples; .* only this measurement is lost/);
    assert.deepEqual(crashed.report.outputs, []);
    assert.deepEqual(withoutTimes(crashed.result.tensors as object), withoutTimes(local.result.tensors as object));
    assert.ok(Buffer.from(encodeModelBytes(crashed.result.model)).equals(encodeModelBytes(local.result.model)), 'the same quantized model');
  });
});

describe("a crash or an onnxruntime error in static quantization's held-back measurement", () => {
  const req: StaticRequest = { activationType: 'uint8', calibration: 'minmax', weights: modelQuantOptions({ bits: 8, format: 'qdq' }), heldBack: 4, target: { snrDb: 60 } };

  /** The run with `runs`, and what a run without a target makes here (the fallback's first round). */
  async function lost(runs: HostRuns) {
    const r = resnet();
    const samples = randomCalibrationSamples(r.model, 10, {});
    const firstRound = await quantizeStatic(r.model, samples, { ...req, target: undefined });
    const targeted = await quantizeStatic(r.model, samples, req);
    let got;
    try {
      got = await quantizeStatic(r.model, samples, req, { runs });
    } finally {
      runs.dispose();
    }
    assertCleaned();
    assert.ok(targeted.fallback.rounds > 1, 'measured, the target takes the fallback more than one round');
    assert.equal(targeted.fallback.comparison.status, 'ok');
    assert.equal(got.fallback.rounds, 1);
    assert.equal(got.fallback.target_met, null);
    assert.deepEqual(got.fallback.excluded, []);
    assert.deepEqual(got.fallback.errors.outputs, []);
    assert.deepEqual(got.fallback.history, [{ round: 0, excluded: 0, min_output_snr_db: null, min_output_cosine: null }]);
    assert.ok(Buffer.from(encodeModelBytes(got.fallback.quantized.model)).equals(encodeModelBytes(firstRound.fallback.quantized.model)), "the first round's model, made all the same");
    const report = staticReport(got, req, 'random', { status: 'skipped', reason: 'not counted here' });
    assert.deepEqual(report.comparison, got.fallback.comparison);
    assert.ok(report.activations.length > 0 && report.activations.every((a) => a.snr_db === null));
    assert.ok(report.warnings.some((w) => w.startsWith('the held-back measurement did not run (the model is returned unmeasured): ')), JSON.stringify(report.warnings));
    return got.fallback.comparison as { status: string; reason: string };
  }

  it('a crash: the first round\'s model is returned, the comparison says onnxruntime crashed measuring it', async () => {
    const r = resnet();
    const c = await lost(crashing(new HostRuns({ ...r, files: [] }), 'activationErrors'));
    assert.equal(c.status, 'error');
    assert.match(c.reason, /^onnxruntime crashed \(SIGKILL\) measuring the quantized model against the float one on the held-back samples; .* only this measurement is lost/);
  });

  it('onnxruntime refusing the model it measures: the same, with onnxruntime\'s message', async () => {
    const r = resnet();
    const runs = new HostRuns({ ...r, files: [] });
    const real = runs.activationErrors;
    // The host is handed a quantized model whose first node onnxruntime has no kernel for.
    runs.activationErrors = (float, quantized, ...rest) => {
      const [first, ...others] = quantized.graph.nodes;
      const broken = { ...quantized, graph: { ...quantized.graph, nodes: [{ ...first!, opType: 'NoSuchOp', src: undefined }, ...others] } };
      return real(float, broken, ...rest);
    };
    const c = await lost(runs);
    assert.equal(c.status, 'error');
    assert.match(c.reason, /^onnxruntime failed measuring the quantized model against the float one on the held-back samples: .*NoSuchOp/);
  });
});

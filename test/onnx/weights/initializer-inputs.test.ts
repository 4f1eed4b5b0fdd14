import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { decodeModel } from '../../../src/onnx/proto/decode.js';
import { encodeModelBytes } from '../../../src/onnx/proto/encode.js';
import { INITIALIZER_INPUT_NOTE, modelQuantOptions, type ModelQuantOptions } from '../../../src/onnx/weights/options.js';
import { quantizeModel } from '../../../src/onnx/weights/quantize-model.js';
import { matmulNet, randn, withInitializersAsInputs, type BuiltModel } from '../models.js';

// Initializers also listed as graph inputs (PyTorch's keep_initializers_as_inputs=True, IR ≥ 4):
// by default every format quantizes them and takes them out of the inputs, saying so in the
// row; initializer_inputs=keep leaves them float and overridable, as before.

const OPTS = { intraOpNumThreads: 1, logSeverityLevel: 3 as const, extra: { session: { qdq_matmulnbits_accuracy_level: '0' } } };

function run(b: BuiltModel, opts: Partial<ModelQuantOptions> = {}) {
  const input = decodeModel(b.bytes);
  const r = quantizeModel(input, modelQuantOptions(opts));
  const bytes = encodeModelBytes(r.model);
  return { ...r, bytes, out: decodeModel(bytes) };
}

async function output(bytes: Uint8Array, x: Float32Array): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes, OPTS);
  try {
    assert.deepEqual(s.inputNames, ['x'], 'onnxruntime is fed the real input only');
    const out = await s.run({ x: new ort.Tensor('float32', x, [1, 8, 256]) });
    return out.y!.data as Float32Array;
  } finally {
    await s.release();
  }
}

function snrDb(ref: Float32Array, got: Float32Array): number {
  let s = 0;
  let e = 0;
  for (let i = 0; i < ref.length; i++) {
    s += ref[i]! ** 2;
    e += (ref[i]! - got[i]!) ** 2;
  }
  return 10 * Math.log10(s / e);
}

const formats: { format: ModelQuantOptions['format']; opset: number; bits?: ModelQuantOptions['bits']; minSnr: number }[] = [
  { format: 'qdq', opset: 17, minSnr: 30 },
  { format: 'matmulnbits', opset: 17, bits: 4, minSnr: 12 },
  { format: 'dynamic', opset: 17, minSnr: 25 },
  { format: 'nf4', opset: 17, minSnr: 12 },
  { format: 'fp8e4m3', opset: 21, minSnr: 20 },
];

describe('initializers that are also graph inputs', () => {
  const x = randn(8 * 256, 91);

  for (const f of formats) {
    it(`${f.format}: quantized, removed from the inputs with a note, and the model runs close to the float one`, async () => {
      const plain = matmulNet(f.opset);
      const listed = withInitializersAsInputs(plain);
      assert.ok(listed.model.irVersion >= 4);
      assert.deepEqual(listed.model.graph.inputs.map((v) => v.name), ['x', 'W1', 'b1', 'W2']);
      const r = run(listed, { format: f.format, ...(f.bits ? { bits: f.bits } : {}) });
      assert.deepEqual(r.tensors.map((t) => t.name).sort(), ['W1', 'W2']);
      for (const t of r.tensors) assert.ok(t.note?.endsWith(INITIALIZER_INPUT_NOTE), `${t.name}: ${t.note}`);
      assert.deepEqual(r.skipped.map((s) => s.name), []);
      // b1 (rank 1, a bias) is no weight: it stays a float initializer, and leaves the inputs too.
      assert.deepEqual(r.out.graph.inputs.map((v) => v.name), ['x']);
      assert.ok(r.out.graph.initializers.some((t) => t.name === 'b1'));
      // The same weights come out as from the model that never listed them.
      const same = run(plain, { format: f.format, ...(f.bits ? { bits: f.bits } : {}) });
      assert.deepEqual(r.tensors.map((t) => [t.name, t.snr_db, t.form]), same.tensors.map((t) => [t.name, t.snr_db, t.form]));
      const ref = await output(plain.bytes, x);
      // onnxruntime prepacks constant weights only: the listed model rounds differently, no more.
      assert.ok(snrDb(ref, await output(listed.bytes, x)) > 100, 'the listed float model computes with its initializers');
      const snr = snrDb(ref, await output(r.bytes, x));
      assert.ok(snr > f.minSnr, `${f.format}: output SNR ${snr.toFixed(1)} dB`);
    });
  }

  it('initializer_inputs=keep leaves them float and inputs, each skipped with the reason', () => {
    const listed = withInitializersAsInputs(matmulNet(17));
    const r = run(listed, { initializerInputs: 'keep' });
    assert.deepEqual(r.tensors, []);
    assert.deepEqual(
      r.skipped.map((s) => [s.name, s.reason]).sort(),
      ['W1', 'W2'].map((n) => [n, 'also a graph input, so callers may override it (initializer_inputs=keep)']),
    );
    assert.deepEqual(r.out.graph.inputs.map((v) => v.name), ['x', 'W1', 'b1', 'W2']);
  });

  it('at IR 3 (every initializer is an input) they are weights as before, with no note; the result is IR 4', () => {
    for (const initializerInputs of ['quantize', 'keep'] as const) {
      for (const bits of [8, 4] as const) {
        const r = run(matmulNet(9, 3), { bits, initializerInputs });
        assert.deepEqual(r.tensors.map((t) => t.name).sort(), ['W1', 'W2']);
        assert.ok(r.tensors.every((t) => t.note === undefined));
        assert.deepEqual(r.out.graph.inputs.map((v) => v.name), ['x', 'b1']);
        // The scales and integers are initializers no input lists: IR 3 forbids that, IR 4 allows it.
        assert.ok(r.out.graph.initializers.some((t) => !r.out.graph.inputs.some((v) => v.name === t.name)));
        assert.equal(r.out.irVersion, 4);
      }
    }
  });
});

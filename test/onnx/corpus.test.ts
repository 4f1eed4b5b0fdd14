import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { decodeModel } from '../../src/onnx/proto/decode.js';
import { encodeModelBytes } from '../../src/onnx/proto/encode.js';
import { modelQuantOptions } from '../../src/onnx/weights/options.js';
import { quantizeModel } from '../../src/onnx/weights/quantize-model.js';
import type { TensorRow } from '../../src/onnx/weights/report.js';
import { asFloat64, CORPUS_DIR, corpusIo, loadCorpusManifest, type CorpusEntry } from './fixture-models.js';
import { cosine } from './cosine.js';

// The corpus of issue 10 (PyTorch exports and hand-built graphs, test/fixtures/models/corpus,
// made by generate.py with their float outputs recorded): on every model, int8 with the
// defaults quantizes ≥ 95% of the weight bytes and lists every weight (quantized or skipped
// with a reason), the result runs in onnxruntime with outputs cosine ≥ 0.999 to the float
// model's recorded outputs, and it is ≤ 0.30× (float32) or ≤ 0.55× (float16) the size;
// where the manifest says the ops allow 4 bits, 4-bit is ≤ 0.20× / 0.35×.
//
// The size bound is on the weights' part of the file: the output's bytes less the bytes of
// the input that are not weights (graph, names, biases and weights under min_elements, which
// stay as they are), against the weights' bytes. The corpus models are small (width 0.25
// CNNs, a 2-layer transformer) and 5-16% of their files is not weights, so the whole-file
// ratio cannot reach 0.30× even at 0 bytes per weight for some; on full-size models the two
// ratios meet. A model holding both float32 and float16 weights gets each weight's bound.

/** (output − input's non-weight bytes) / weight bytes. */
function weightRatio(e: CorpusEntry, inputBytes: number, outputBytes: number): number {
  return (outputBytes - (inputBytes - e.weights.bytes)) / e.weights.bytes;
}

/**
 * The bound, weight by weight: float32 weights at `fp32`×, float16 ones at `fp16`×
 * (a model may hold both: a float16 Constant cast to float32), as a ratio of all weight bytes.
 */
function bound(e: CorpusEntry, fp32: number, fp16: number, rows: TensorRow[] = []): number {
  const elements = (w: CorpusEntry['weights']['tensors'][number]) => w.dims.reduce((a, b) => a * b, 1);
  let allowed = 0;
  let total = 0;
  for (const w of e.weights.tensors) {
    const bytes = elements(w) * (w.dtype === 'float32' ? 4 : 2);
    total += bytes;
    allowed += bytes * (w.dtype === 'float32' ? fp32 : fp16) * padding(rows.find((r) => r.name === w.name));
  }
  return allowed / total;
}

/** MatMulNBits stores K in whole blocks: K = 48 at group 32 takes 64 rows (the 4-bit bound grows by as much). */
function padding(row: TensorRow | undefined): number {
  if (!row || row.format !== 'matmulnbits' || row.group_size === null || row.axis === null) return 1;
  const k = row.shape[row.axis]!;
  return (Math.ceil(k / row.group_size) * row.group_size) / k;
}

const manifest = loadCorpusManifest();

function sessionOptions(e: CorpusEntry): ort.InferenceSession.SessionOptions {
  return {
    intraOpNumThreads: 1,
    logSeverityLevel: 3,
    graphOptimizationLevel: e.ort?.safe_options.graphOptimizationLevel ?? 'all',
    extra: { session: { qdq_matmulnbits_accuracy_level: '0' } },
  };
}

/** The quantized model's outputs against the recorded float outputs: the worst cosine. */
async function worstCosine(e: CorpusEntry, bytes: Uint8Array): Promise<number> {
  const { feeds, expected } = corpusIo(e);
  const s = await ort.InferenceSession.create(bytes, sessionOptions(e));
  try {
    const out = await s.run(feeds);
    let worst = 1;
    for (const name of e.outputs) {
      const want = expected.get(name);
      const got = out[name];
      assert.ok(want && got, `output ${name}`);
      assert.deepEqual(got.dims, want.shape, `output ${name} shape`);
      worst = Math.min(worst, cosine(asFloat64(got.data, got.type), asFloat64(want.data, want.dtype)));
    }
    return worst;
  } finally {
    await s.release();
  }
}

function quantize(e: CorpusEntry, bits: 4 | 8) {
  const input = new Uint8Array(readFileSync(join(CORPUS_DIR, e.file)));
  const r = quantizeModel(decodeModel(input), modelQuantOptions({ bits, minElements: manifest.min_elements }));
  return { ...r, input, bytes: encodeModelBytes(r.model) };
}

describe('model corpus (issue 10)', () => {
  assert.ok(manifest.models.length >= 40, 'the corpus is there');
  for (const e of manifest.models) {
    it(`${e.name}: int8 quantizes ≥ 95% of the weight bytes, lists every weight, runs at cosine ≥ 0.999, weights ≤ ${e.float_type === 'float16' ? 0.55 : 0.3}× the size`, async () => {
      const r = quantize(e, 8);
      const listed = new Set([...r.tensors.map((t) => t.name), ...r.skipped.map((s) => s.name)]);
      for (const w of e.weights.tensors) assert.ok(listed.has(w.name), `weight '${w.name}' (${w.graph}) is neither quantized nor skipped`);
      for (const s of r.skipped) assert.ok(s.reason.length > 10, `skip reason for ${s.name}`);
      const done = r.tensors.reduce((s, t) => s + t.original_bytes, 0);
      assert.ok(done >= 0.95 * e.weights.bytes, `quantized ${done} of ${e.weights.bytes} weight bytes; skipped: ${JSON.stringify(r.skipped)}`);
      assert.ok(r.floatWeightBytes! >= e.weights.bytes && r.quantizedWeightBytes === done, "the summary counts every float constant and the quantized ones");
      const ratio = weightRatio(e, r.input.length, r.bytes.length);
      assert.ok(ratio <= bound(e, 0.3, 0.55), `weights ${ratio.toFixed(3)}× (file ${(r.bytes.length / r.input.length).toFixed(3)}×)`);
      const c = await worstCosine(e, r.bytes);
      assert.ok(c >= 0.999, `cosine ${c}`);
    });
    if (e.four_bit.applies) {
      it(`${e.name}: 4-bit weights are ≤ ${e.float_type === 'float16' ? 0.35 : 0.2}× the size and run`, async () => {
        const r = quantize(e, 4);
        const ratio = weightRatio(e, r.input.length, r.bytes.length);
        assert.ok(ratio <= bound(e, 0.2, 0.35, r.tensors), `weights ${ratio.toFixed(3)}× (file ${(r.bytes.length / r.input.length).toFixed(3)}×); forms: ${JSON.stringify(r.tensors.map((t) => [t.name, t.format, t.bits, t.note]))}`);
        const c = await worstCosine(e, r.bytes);
        assert.ok(c >= 0.98, `cosine ${c}`);
      });
    }
  }
});

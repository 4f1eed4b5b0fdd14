import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { readNpyArray } from '../src/codecs/npy.js';
import { decodeNpz } from '../src/codecs/npz.js';
import { calibrationSamplesFromNpz, splitSamples } from '../src/onnx/activations/calibration-data.js';
import { defaultHeldBack } from '../src/onnx/activations/quantize-static.js';
import { compareOnSamples } from '../src/onnx/runtime/held-back.js';
import { quantizeDataAware } from '../src/onnx/activations/quantize-data-aware.js';
import { decodeModel } from '../src/onnx/proto/decode.js';
import { encodeModelBytes } from '../src/onnx/proto/encode.js';
import { attrInt, type OnnxModel } from '../src/onnx/proto/model.js';
import { isDataAware, modelQuantOptions, type ModelBits, type ModelMethod } from '../src/onnx/weights/options.js';
import { quantizeModel } from '../src/onnx/weights/quantize-model.js';
import type { BenchOptions, Detail, ScenarioResult } from './lib/rows.js';

// Data-aware methods on grouped Conv (awq per conv group, gptq per conv group's Hessian): the
// trained ResNeXt-style glyph CNN (test/fixtures/models/trained/train_grouped_glyphs.py; a
// group-8 and a group-4 Conv, a depthwise Conv, group-1 Convs, a Linear), opset 17 export run
// at opset 21 (blocked int4 DequantizeLinear for the Conv weights), asymmetric, Conv and Gemm
// weights, every one of them (min_elements 1: the depthwise weight has 576 values); the committed glyph calibration .npz (a quarter held back, as the service does).
// Top-1 on glyphs-eval.npz (held-out fonts), agreement with the float model's class, and the
// report's held-back logits SNR; per grouped weight the awq/gptq proxy-loss reduction over rtn.

const FIXTURES = new URL('../../test/fixtures/models/trained/', import.meta.url).pathname;

const CONFIGS: { label: string; bits: ModelBits; groupSize: number }[] = [
  { label: '4b_g16', bits: 4, groupSize: 16 },
  { label: '3b_g16', bits: 3, groupSize: 16 },
  { label: '2b_g16', bits: 2, groupSize: 16 },
];
const METHODS: { name: string; method: ModelMethod; awqClip?: boolean }[] = [
  { name: 'rtn', method: 'rtn' },
  { name: 'gptq', method: 'gptq' },
  { name: 'awq', method: 'awq' },
  { name: 'awq_no_clip', method: 'awq', awqClip: false },
];

function atOpset21(m: OnnxModel): OnnxModel {
  return { ...m, irVersion: Math.max(m.irVersion, 10), opsetImports: m.opsetImports.map((o) => (o.domain === '' || o.domain === 'ai.onnx' ? { ...o, version: 21 } : o)) };
}

async function predict(bytes: Uint8Array, images: Float32Array, count: number): Promise<Int32Array> {
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
  try {
    const out = new Int32Array(count);
    for (let at = 0; at < count; at += 64) {
      const n = Math.min(64, count - at);
      const logits = (await session.run({ image: new ort.Tensor('float32', images.subarray(at * 1024, (at + n) * 1024), [n, 1, 32, 32]) })).logits!.data as Float32Array;
      const classes = logits.length / n;
      for (let i = 0; i < n; i++) {
        let best = 0;
        for (let k = 1; k < classes; k++) if (logits[i * classes + k]! > logits[i * classes + best]!) best = k;
        out[at + i] = best;
      }
    }
    return out;
  } finally {
    await session.release();
  }
}

export async function run(o: BenchOptions): Promise<ScenarioResult> {
  const details: Detail[] = [];
  const model = atOpset21(decodeModel(readFileSync(`${FIXTURES}grouped-glyphs-op17.onnx`)));
  const groupOf = (node: string) => attrInt(model.graph.nodes.find((n) => n.name === node)!, 'group', 1);
  const calibration = readFileSync(`${FIXTURES}glyphs-calibration.npz`);
  const entries = new Map(decodeNpz(readFileSync(`${FIXTURES}glyphs-eval.npz`)).map((e) => [e.name.replace(/\.npy$/, ''), e.data]));
  const array = (name: string) => readNpyArray(entries.get(name)!, { maxElements: 2 ** 26, maxDims: 8 }).bytes;
  const ib = array('image');
  const images = new Float32Array(ib.buffer, ib.byteOffset, ib.byteLength / 4);
  const lb = array('label');
  const labels = new BigInt64Array(lb.buffer, lb.byteOffset, lb.byteLength / 8);
  const count = o.quick ? 256 : labels.length;
  const floatPred = await predict(encodeModelBytes(model), images, count);
  const acc = (p: Int32Array) => p.reduce((s, c, i) => s + (BigInt(c) === labels[i] ? 1 : 0), 0) / count;
  const floatTop1 = acc(floatPred);
  o.log(`lowbit-grouped float top-1 ${floatTop1.toFixed(4)} (${count} images)`);
  details.push({ name: 'grouped glyphs float top-1', value: floatTop1, unit: '' });
  for (const c of CONFIGS) {
    for (const m of METHODS) {
      const opts = modelQuantOptions({ bits: c.bits, groupSize: c.groupSize, granularity: 'per_group', scheme: 'asymmetric', method: m.method, opTypes: ['Conv', 'Gemm'], minElements: 1, awqClip: m.awqClip ?? true });
      const t0 = performance.now();
      let bytes: Uint8Array;
      let extra: string;
      if (isDataAware(m.method)) {
        const samples = calibrationSamplesFromNpz(calibration, model, { maxBytes: 2 ** 30, maxSamples: 4096 });
        const r = await quantizeDataAware(model, samples, { method: m.method, weights: opts });
        bytes = encodeModelBytes(r.result.model);
        const grouped = r.result.tensors.filter((t) => t.op_type === 'Conv' && groupOf(t.node) > 1);
        extra = `, held-back logits SNR ${r.report.outputs[0]?.snr_db?.toFixed(2)} dB; grouped/depthwise: ${grouped
          .map((t) => `${t.name} [g${groupOf(t.node)}] ${t.method} proxy ${t.proxy_loss_reduction === undefined || t.proxy_loss_reduction === null ? '—' : t.proxy_loss_reduction.toFixed(3)}`)
          .join('; ')}`;
        const snr = r.report.outputs[0]?.snr_db;
        if (snr !== undefined && snr !== null) details.push({ name: `grouped glyphs ${c.label} ${m.name} held-back logits SNR`, value: snr, unit: 'dB' });
      } else {
        bytes = encodeModelBytes(quantizeModel(model, opts).model);
        // The same held-back samples the data-aware reports compare on.
        const samples = calibrationSamplesFromNpz(calibration, model, { maxBytes: 2 ** 30, maxSamples: 4096 });
        const { heldBack } = splitSamples(samples, defaultHeldBack(samples.count));
        const snr = (await compareOnSamples({ bytes: encodeModelBytes(model) }, { bytes }, heldBack))[0]?.snr_db;
        extra = `, held-back logits SNR ${snr?.toFixed(2)} dB`;
        if (snr !== undefined && snr !== null) details.push({ name: `grouped glyphs ${c.label} ${m.name} held-back logits SNR`, value: snr, unit: 'dB' });
      }
      const seconds = (performance.now() - t0) / 1000;
      const pred = await predict(bytes, images, count);
      let agree = 0;
      for (let i = 0; i < count; i++) if (pred[i] === floatPred[i]) agree++;
      o.log(`lowbit-grouped ${c.label} ${m.name}: top-1 ${acc(pred).toFixed(4)}, agreement with float ${(agree / count).toFixed(4)}, ${seconds.toFixed(1)} s${extra}`);
      details.push({ name: `grouped glyphs ${c.label} ${m.name} top-1`, value: acc(pred), unit: '' });
      details.push({ name: `grouped glyphs ${c.label} ${m.name} agreement with float`, value: agree / count, unit: '' });
    }
  }
  return { rows: [], details };
}

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { charLmPerplexity, encodeChars, loadCharVocab, windowNll } from '../../bench/lib/char-lm.js';
import { lmCompare, lmReference, pairedIncrease } from '../../bench/lib/lm-compare.js';
import { dithered } from '../../bench/lib/weight-variants.js';
import { decodeModel } from '../../src/onnx/proto/decode.js';
import { encodeModelBytes } from '../../src/onnx/proto/encode.js';
import { modelQuantOptions } from '../../src/onnx/weights/options.js';
import { quantizeModel } from '../../src/onnx/weights/quantize-model.js';
import { readNpzArrays, TRAINED_DIR } from './fixture-models.js';

// The trained fixtures (test/fixtures/models/trained/) reproduce in onnxruntime-node the figures
// PyTorch recorded when they were made: the char-LM's perplexity on its held-out text and the
// glyph classifier's top-1 on its held-out fonts.

describe('windowNll', () => {
  it('is C·log(V) for uniform logits and follows the target under peaked ones', () => {
    const V = 5;
    const C = 3;
    const uniform = new Float32Array(C * V).fill(0.25);
    const targets = BigInt64Array.from([0n, 4n, 2n]);
    assert.ok(Math.abs(windowNll(uniform, V, targets, C) - C * Math.log(V)) < 1e-12);
    // logits (0, ..., 0, 10 at the target): nll per step = log(4 + e^10) - 10
    const peaked = new Float32Array(C * V);
    targets.forEach((t, i) => (peaked[i * V + Number(t)] = 10));
    const want = C * (Math.log(4 + Math.exp(10)) - 10);
    assert.ok(Math.abs(windowNll(peaked, V, targets, C) - want) < 1e-9);
  });
});

describe('pairedIncrease', () => {
  it('is exp(mean NLL_a)·(exp(d̄) − 1) with d̄ ± 1.96·s/√n from the per-window differences', () => {
    const a = Float64Array.of(10, 12, 11, 13);
    const b = Float64Array.of(10.2, 12.4, 11.2, 13.4); // per char (context 2): 0.1, 0.2, 0.1, 0.2
    const r = pairedIncrease(a, b, 2);
    const base = Math.exp(46 / 8);
    const se = Math.sqrt((4 * 0.05 ** 2) / 3 / 4);
    assert.ok(Math.abs(r.increase - base * (Math.exp(0.15) - 1)) < 1e-9 * base);
    assert.ok(Math.abs(r.lo - base * (Math.exp(0.15 - 1.96 * se) - 1)) < 1e-9 * base);
    assert.ok(Math.abs(r.hi - base * (Math.exp(0.15 + 1.96 * se) - 1)) < 1e-9 * base);
    assert.throws(() => pairedIncrease(a, b.subarray(1), 2));
  });
});

describe('lmCompare and dithered roundings on the committed char LM', () => {
  const vocab = loadCharVocab(join(TRAINED_DIR, 'charlm-vocab.json'));
  const ids = encodeChars(readFileSync(join(TRAINED_DIR, 'charlm-eval.txt'), 'utf8'), vocab);
  const model = decodeModel(readFileSync(join(TRAINED_DIR, 'charlm.onnx')));
  const opts = { context: 128, maxWindows: 4, sessionOptions: { extra: { session: { qdq_matmulnbits_accuracy_level: '0' } } } };
  const wopts = modelQuantOptions({ bits: 4, groupSize: 32, scheme: 'asymmetric', opTypes: ['MatMul'] });

  it('the float model against itself: KLD 0, infinite SNR, full agreement; a 4-bit model: KLD > 0 and the perplexity charLmPerplexity gives', async () => {
    const bytes = encodeModelBytes(model);
    const ref = await lmReference(bytes, ids, opts);
    assert.equal(ref.windows, 4);
    const self = await lmCompare(bytes, ids, opts, ref);
    assert.ok(Math.abs(self.kld) < 1e-12, `KLD ${self.kld}`);
    assert.equal(self.logitsSnrDb, Infinity);
    assert.equal(self.top1Agreement, 1);
    assert.equal(self.perplexity, ref.perplexity);
    const q = encodeModelBytes(quantizeModel(model, wopts).model);
    const c = await lmCompare(q, ids, opts, ref);
    assert.ok(c.kld > 0 && Number.isFinite(c.logitsSnrDb) && c.logitsSnrDb > 10, `KLD ${c.kld}, SNR ${c.logitsSnrDb}`);
    const p = await charLmPerplexity(q, ids, opts);
    assert.ok(Math.abs(c.perplexity - p.perplexity) < 1e-9 * p.perplexity);
  });

  it('a dither of τ = 0 is rtn exactly; τ = 0.1 moves a few weights by one step and raises the weight error a little', () => {
    const rtn = quantizeModel(model, wopts);
    const same = quantizeModel(model, wopts, dithered(wopts, 'rtn', 1, 0));
    assert.deepEqual(encodeModelBytes(same.model), encodeModelBytes(rtn.model));
    const moved = dithered(wopts, 'rtn', 1, 0.1);
    quantizeModel(model, wopts, moved);
    const ratio = moved.mseRatio();
    assert.ok(ratio > 1 && ratio < 1.1, `weight error ×${ratio}`);
  });
});

describe('trained fixtures in onnxruntime', () => {
  it('charlm.onnx: perplexity on charlm-eval.txt within 1% of the PyTorch figure', async () => {
    const doc = JSON.parse(readFileSync(join(TRAINED_DIR, 'charlm.json'), 'utf8')) as {
      context: number;
      perplexity: { value: number; windows: number; predicted_chars: number };
    };
    const vocab = loadCharVocab(join(TRAINED_DIR, 'charlm-vocab.json'));
    const ids = encodeChars(readFileSync(join(TRAINED_DIR, 'charlm-eval.txt'), 'utf8'), vocab);
    const r = await charLmPerplexity(join(TRAINED_DIR, 'charlm.onnx'), ids, { context: doc.context, inputName: 'input_ids', outputName: 'logits' });
    assert.equal(r.windows, doc.perplexity.windows);
    assert.equal(r.predicted, doc.perplexity.predicted_chars);
    const rel = Math.abs(r.perplexity - doc.perplexity.value) / doc.perplexity.value;
    assert.ok(rel < 0.01, `onnxruntime perplexity ${r.perplexity} vs PyTorch ${doc.perplexity.value} (${(rel * 100).toFixed(3)}%)`);
    // a model that learned nothing would sit near the vocabulary size
    assert.ok(r.perplexity < vocab.tokens.length / 4, `perplexity ${r.perplexity}`);
  });

  it('glyphs.onnx: top-1 on glyphs-eval.npz equals the PyTorch figure within one sample', async () => {
    const doc = JSON.parse(readFileSync(join(TRAINED_DIR, 'glyphs.json'), 'utf8')) as { classes: string[]; top1: { value: number; samples: number } };
    const arrays = readNpzArrays(join(TRAINED_DIR, 'glyphs-eval.npz'));
    const image = arrays.get('image')!;
    const label = arrays.get('label')!;
    const [n, , c, h, w] = image.shape as [number, number, number, number, number];
    assert.equal(n, doc.top1.samples);
    const session = await ort.InferenceSession.create(join(TRAINED_DIR, 'glyphs.onnx'), { intraOpNumThreads: 1 });
    try {
      const per = c * h * w;
      const batch = 128;
      let correct = 0;
      for (let s = 0; s < n; s += batch) {
        const b = Math.min(batch, n - s);
        const x = new ort.Tensor('float32', (image.data as Float32Array).slice(s * per, (s + b) * per), [b, c, h, w]);
        const logits = (await session.run({ image: x })).logits!.data as Float32Array;
        const k = doc.classes.length;
        for (let i = 0; i < b; i++) {
          let best = 0;
          for (let j = 1; j < k; j++) if (logits[i * k + j]! > logits[i * k + best]!) best = j;
          if (BigInt(best) === (label.data as BigInt64Array)[s + i]) correct++;
        }
      }
      const top1 = correct / n;
      assert.ok(Math.abs(top1 - doc.top1.value) <= 1 / n + 1e-12, `onnxruntime top-1 ${top1} vs PyTorch ${doc.top1.value}`);
      assert.ok(top1 > 5 / doc.classes.length, `top-1 ${top1} is near chance`);
    } finally {
      await session.release();
    }
  });
});

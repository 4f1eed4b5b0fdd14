import { readFileSync } from 'node:fs';
import { readNpyArray } from '../src/codecs/npy.js';
import { decodeNpz } from '../src/codecs/npz.js';
import type { LsqWeighting } from '../src/core/methods/lsq-weights.js';
import type { QuantMethod } from '../src/core/methods/index.js';
import { dequantizeWith } from '../src/core/quantize.js';
import { decodeModel } from '../src/onnx/proto/decode.js';
import { encodeModelBytes } from '../src/onnx/proto/encode.js';
import { modelQuantOptions } from '../src/onnx/weights/options.js';
import { quantizeModel } from '../src/onnx/weights/quantize-model.js';
import { encodeChars, loadCharVocab } from './lib/char-lm.js';
import { lmCompare, lmReference } from './lib/lm-compare.js';
import { DITHER_TAU, dithered } from './lib/weight-variants.js';

// The perplexity change of each 4-bit g128 rounding of a char LM split into its first-order
// part and the rest (bench/README.md "A model at a minimum"): ΔNLL ≈ g·e + ½eᵀHe, g the
// gradient of the mean eval NLL at the float weights (charlm-grad.npz, from
// test/fixtures/models/trained/charlm_first_order.py DIR --save-grad), e = Ŵ − W of every
// quantized MatMul weight. g·e's sign follows the rounding (luck); the rest is what a better
// grid lowers. Same roundings as bench/lowbit.ts (its rtn / lsq / lsq_mag / hqq, and the
// same seeded dithers), perplexity from onnxruntime. Not a bench scenario (no timing):
//   node dist/bench/lowbit-first-order.js DIR [seeds=8]

const [dirArg = new URL('../../test/fixtures/models/trained/', import.meta.url).pathname, seedsArg = '8'] = process.argv.slice(2);
const dir = dirArg.replace(/\/$/, '');
const seeds = Number(seedsArg);
const grads = new Map(
  decodeNpz(readFileSync(`${dir}/charlm-grad.npz`)).map((e) => {
    const bytes = readNpyArray(e.data, { maxElements: 2 ** 26, maxDims: 4 }).bytes;
    return [e.name.replace(/\.npy$/, ''), new Float64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8)] as const;
  }),
);
const model = decodeModel(readFileSync(`${dir}/charlm.onnx`));
const ids = encodeChars(readFileSync(`${dir}/charlm-eval.txt`, 'utf8'), loadCharVocab(`${dir}/charlm-vocab.json`));
const opts = { context: 128, sessionOptions: { extra: { session: { qdq_matmulnbits_accuracy_level: '0' } } } };
const ref = await lmReference(encodeModelBytes(model), ids, opts);
const runs: { name: string; method: QuantMethod; lsqWeights: LsqWeighting }[] = [
  { name: 'rtn', method: 'rtn', lsqWeights: 'mse' },
  { name: 'lsq', method: 'lsq', lsqWeights: 'mse' },
  { name: 'lsq_mag', method: 'lsq', lsqWeights: 'magnitude' },
  { name: 'hqq', method: 'hqq', lsqWeights: 'mse' },
];
const f4 = (v: number) => (v >= 0 ? '+' : '') + v.toFixed(4);
const stats = (a: number[]) => {
  const m = a.reduce((s, v) => s + v, 0) / a.length;
  const sd = a.length > 1 ? Math.sqrt(a.reduce((s, v) => s + (v - m) ** 2, 0) / (a.length - 1)) : 0;
  return `${f4(m)} ± ${sd.toFixed(4)}`;
};
console.log(`${dir}: float perplexity ${ref.perplexity.toFixed(4)}; 4-bit g128 asymmetric, increase = first order (ppl·g·e) + rest, in perplexity points`);
for (const r of runs) {
  const wopts = modelQuantOptions({ bits: 4, groupSize: 128, scheme: 'asymmetric', method: r.method, opTypes: ['MatMul', 'Gemm', 'Conv'], lsqWeights: r.lsqWeights });
  const inc: number[] = [];
  const first: number[] = [];
  const rest: number[] = [];
  // Seed 0 is the method's own rounding (no dither); 1..seeds are bench/lowbit.ts's dithers.
  for (let seed = 0; seed <= seeds; seed++) {
    const hook = dithered(wopts, r.method, seed, seed === 0 ? 0 : DITHER_TAU);
    let ge = 0;
    const q = quantizeModel(model, wopts, {
      quantizeWeight: (c, plan, values) => {
        const out = hook.quantizeWeight(c, plan, values);
        if (typeof out === 'string') return out;
        const g = grads.get(c.tensor.name);
        if (!g || g.length !== values.length) throw new Error(`no gradient for ${c.tensor.name}`);
        const xHat = dequantizeWith(out.weight.q, out.weight.params);
        for (let i = 0; i < values.length; i++) ge += g[i]! * (xHat[i]! - values[i]!);
        return out;
      },
    });
    const cmp = await lmCompare(encodeModelBytes(q.model), ids, opts, ref);
    const d = cmp.perplexity - ref.perplexity;
    const f = ref.perplexity * Math.expm1(ge);
    console.log(`${r.name} ${seed === 0 ? 'own rounding' : `dither ${seed}`}: increase ${f4(d)} = first order ${f4(f)} + rest ${f4(d - f)}`);
    if (seed === 0) console.log(`${r.name} own rounding: rest ${f4(d - f)}`);
    else {
      inc.push(d);
      first.push(f);
      rest.push(d - f);
    }
  }
  if (seeds > 0) console.log(`${r.name} ${seeds} dithers (mean ± sd): increase ${stats(inc)}, first order ${stats(first)}, rest ${stats(rest)}`);
}

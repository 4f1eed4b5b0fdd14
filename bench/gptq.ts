import * as ort from 'onnxruntime-node';
import { gptq } from '../src/core/methods/gptq.js';
import { accumulateGram } from '../src/core/methods/gram.js';
import { releaseGramSpace } from '../src/core/kernels/gram.js';
import { factorInverse, LinalgSpace } from '../src/core/kernels/linalg.js';
import { mulberry32 } from '../src/core/random.js';
import { gramModel } from './lib/onnx-graphs.js';
import { row, type BenchOptions, type ScenarioResult } from './lib/rows.js';
import { median } from './lib/stats.js';

// GPTQ of one 4096×4096 layer on one thread, as issue 11 states the target: 128 calibration
// samples of 512 tokens (65536 rows of 4096 correlated activations, generated per sample so
// the 1 GiB of them never exists at once), then the factorization and the column loop. Each
// stage is timed on its own (one run: the whole takes minutes); the Hessian's accumulation is
// also compared with onnxruntime's Gemm(Xᵀ, X) on the same samples (intraOpNumThreads 1).

const ORT_OPTIONS: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential' };

/** A sample of `tokens` rows: a rank-16 shared part (correlated features) plus noise, column scales over two decades. */
function sampler(k: number, tokens: number, seed: number): () => Float32Array {
  const rand = mulberry32(seed);
  const gauss = () => {
    const u = (rand() + 1) / 4294967297;
    const v = rand() / 4294967296;
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
  const rank = 16;
  const basis = Float32Array.from({ length: rank * k }, gauss);
  const colScale = Float32Array.from({ length: k }, () => 10 ** (2 * (rand() / 4294967296) - 1));
  return () => {
    const x = new Float32Array(tokens * k);
    const a = new Float32Array(rank);
    for (let r = 0; r < tokens; r++) {
      for (let t = 0; t < rank; t++) a[t] = gauss();
      const row = r * k;
      for (let j = 0; j < k; j++) {
        let s = 0.3 * gauss();
        for (let t = 0; t < rank; t++) s += a[t]! * basis[t * k + j]!;
        x[row + j] = s * colScale[j]!;
      }
    }
    return x;
  };
}

export async function run(o: BenchOptions): Promise<ScenarioResult> {
  const k = o.quick ? 1024 : 4096;
  const rows = k;
  const tokens = 512;
  const samples = o.quick ? 16 : 128;
  const next = sampler(k, tokens, 77);
  const acc = new Float64Array(k * k);
  const session = await ort.InferenceSession.create(gramModel(tokens, k), ORT_OPTIONS);
  const gramTimes: number[] = [];
  const ortTimes: number[] = [];
  let generate = 0;
  for (let s = 0; s < samples; s++) {
    let t = performance.now();
    const x = next();
    generate += performance.now() - t;
    t = performance.now();
    accumulateGram(acc, x, tokens, k);
    gramTimes.push(performance.now() - t);
    // onnxruntime on every 4th sample (the ratio is per sample; its output is dropped).
    if (s % 4 === 0) {
      t = performance.now();
      await session.run({ X: new ort.Tensor('float32', x, [tokens, k]) });
      ortTimes.push(performance.now() - t);
    }
  }
  await session.release();
  releaseGramSpace();
  o.log(`gptq: generated ${samples} samples in ${(generate / 1000).toFixed(1)} s (not timed)`);
  const gramTotal = gramTimes.reduce((a, b) => a + b, 0);

  const w = new Float32Array(rows * k);
  const rand = mulberry32(5);
  for (let i = 0; i < w.length; i++) w[i] = ((rand() / 4294967296) * 2 - 1) / Math.sqrt(k);

  // The factorization alone (gptq repeats it inside; timed here on its own).
  let mean = 0;
  for (let i = 0; i < k; i++) mean += acc[i * k + i]! / k;
  let t = performance.now();
  const space = new LinalgSpace(4 * 2 * (k + 16) * (k + 16) + (1 << 22));
  if (!factorInverse(space, acc, k, 0.01 * mean)) throw new Error('bench Hessian is not positive definite');
  const factorMs = performance.now() - t;

  t = performance.now();
  const res = gptq(w, rows, k, acc, { bits: 4, scheme: 'asymmetric', groupSize: 128 });
  const gptqMs = performance.now() - t;
  const loopMs = gptqMs - factorMs;
  const totalMs = gramTotal + gptqMs;
  const gramFlops = samples * tokens * k * k; // multiply-adds of the upper blocks, ×2 flops, /2 symmetry
  const shape = `${rows}×${k}, ${samples}×${tokens} rows`;
  o.log(`gptq: ${shape}: gram ${(gramTotal / 1000).toFixed(1)} s (${(gramFlops / gramTotal / 1e6).toFixed(1)} GFLOP/s), factor ${(factorMs / 1000).toFixed(1)} s, column loop ${(loopMs / 1000).toFixed(1)} s; codes[0] ${res.codes[0]}`);
  return {
    rows: [
      row({ name: 'gptq.total', value: totalMs / 1000, unit: 's', baselineName: 'target 30 s', baselineValue: 30, better: 'lower', target: 1, note: `${shape}, 4-bit g128: Hessian + factorization + column loop, one thread, one run (ratio = value / 30 s)` }),
      row({ name: 'gptq.gram_per_sample', value: median(gramTimes), unit: 'ms', baselineName: 'onnxruntime Gemm(Xᵀ,X)', baselineValue: median(ortTimes), better: 'lower', target: null, note: `median per 512×${k} sample; ratio = wasm / onnxruntime (1 thread), same run` }),
    ],
    details: [
      { name: `gram accumulation, ${shape}`, value: gramTotal / 1000, unit: 's' },
      { name: 'gram GFLOP/s (2·n·k²/2 flops: upper blocks)', value: gramFlops / gramTotal / 1e6, unit: 'GFLOP/s' },
      { name: 'onnxruntime Gemm GFLOP/s (2·n·k² flops)', value: (2 * tokens * k * k) / median(ortTimes) / 1e6, unit: 'GFLOP/s' },
      { name: `factorization (Cholesky + inverse), ${k}×${k}`, value: factorMs / 1000, unit: 's' },
      { name: 'column loop and block updates (gptq less the factorization)', value: loopMs / 1000, unit: 's' },
    ],
  };
}

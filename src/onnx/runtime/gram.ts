import type { InferenceSession } from 'onnxruntime-node';
import { GRAM_ROWS } from '../../core/kernels/gram.js';
import { Errors } from '../../errors.js';
import { attrs, graph, int64Tensor, model, node, valueInfo } from '../graph/build.js';
import { encodeModelBytes } from '../proto/encode.js';
import { DataType } from '../proto/model.js';
import { loadOrt } from './ort.js';
import { baseOptions } from './validate.js';

// Σ xᵀx on onnxruntime's GEMM (MLAS: AVX2/AVX-512 FMA, several times the float32 rate of a
// 128-bit WebAssembly kernel on one core), for the Hessians of GPTQ on big layers. The rows
// go in GRAM_ROWS at a time, as the WebAssembly path (core/kernels/gram.ts) takes them, and
// each chunk's float32 products are added into float64 here: a float32 inner product of
// GRAM_ROWS terms is within γ_GRAM_ROWS·Σ|x_ri·x_rj| ≤ (GRAM_ROWS + 1)·2⁻²⁴·Σ|x_ri·x_rj| in any
// summation order, with or without fused multiply-adds, so the two paths keep one stated
// bound (test/onnx/runtime/gram.test.ts checks it). Only the upper block triangle is
// computed: the columns are cut into `blocks` bands, and band b's Gemm takes Xᵀ[band b] times
// X[:, band b start ..], (blocks + 1) / (2·blocks) of the full product's work.

/** Bands of columns: 8 bands do 56% of the full product's multiply-adds, in Gemms big enough for MLAS to run at speed. */
const BANDS = 8;

function bandsOf(k: number): { from: number; to: number }[] {
  const count = Math.min(BANDS, Math.ceil(k / 64));
  const width = Math.ceil(k / count / 8) * 8;
  const out: { from: number; to: number }[] = [];
  for (let from = 0; from < k; from += width) out.push({ from, to: Math.min(from + width, k) });
  return out;
}

/** The graph: X [n, k] → per band b, G_b = X[:, from_b:to_b]ᵀ · X[:, from_b:k] ([to_b − from_b, k − from_b]). */
export function gramModelBytes(k: number): Uint8Array {
  const nodes = [];
  const inits = [int64Tensor('axis1', [1], [1]), int64Tensor('k_end', [1], [k])];
  const outputs = [];
  for (const [b, { from, to }] of bandsOf(k).entries()) {
    inits.push(int64Tensor(`from${b}`, [1], [from]), int64Tensor(`to${b}`, [1], [to]));
    nodes.push(
      node('Slice', ['X', `from${b}`, `to${b}`, 'axis1'], [`band${b}`], { name: `band${b}` }),
      node('Slice', ['X', `from${b}`, 'k_end', 'axis1'], [`rest${b}`], { name: `rest${b}` }),
      node('Transpose', [`band${b}`], [`bandT${b}`], { name: `bandT${b}`, attributes: [attrs.ints('perm', [1, 0])] }),
      node('MatMul', [`bandT${b}`, `rest${b}`], [`G${b}`], { name: `G${b}` }),
    );
    outputs.push(valueInfo(`G${b}`, DataType.float32, [to - from, k - from]));
  }
  return encodeModelBytes(model(graph({ nodes, initializers: inits, inputs: [valueInfo('X', DataType.float32, ['n', k])], outputs }), { opset: 13 }));
}

/**
 * Σ xᵀx over rows given in pieces, each GRAM_ROWS-row chunk on onnxruntime (one intra-op
 * thread, as every session of the pool), the chunks summed in float64.
 */
export class OrtGram {
  readonly k: number;
  private readonly bands: { from: number; to: number }[];
  private readonly sums: Float64Array;

  private constructor(
    k: number,
    private readonly session: InferenceSession,
    private readonly ort: typeof import('onnxruntime-node'),
  ) {
    this.k = k;
    this.bands = bandsOf(k);
    this.sums = new Float64Array(k * k);
  }

  static async create(k: number, threads = 1): Promise<OrtGram> {
    if (!Number.isInteger(k) || k < 1) throw new Errors.TensorShape(`a Gram matrix needs k ≥ 1 columns, got ${k}`);
    const ort = await loadOrt();
    const session = await ort.InferenceSession.create(gramModelBytes(k), baseOptions(threads));
    return new OrtGram(k, session, ort);
  }

  /** Adds xᵀx for the first n rows of x (n × k row-major). */
  async add(x: Float32Array, n: number): Promise<void> {
    const { k, sums } = this;
    if (!Number.isInteger(n) || n < 0 || x.length < n * k) throw new Errors.TensorShape(`OrtGram.add: x has ${x.length} values, n×k = ${n}×${k}`);
    for (let r0 = 0; r0 < n; r0 += GRAM_ROWS) {
      const count = Math.min(GRAM_ROWS, n - r0);
      const feeds = { X: new this.ort.Tensor('float32', x.subarray(r0 * k, (r0 + count) * k), [count, k]) };
      const got = await this.session.run(feeds);
      for (const [b, { from, to }] of this.bands.entries()) {
        const g = got[`G${b}`]!.data as Float32Array;
        const w = k - from;
        // Band b's rows from..to, columns from..k-1: the upper part of those rows (and, in the
        // diagonal block, its lower part too, overwritten by the mirror in addInto).
        for (let i = 0; i < to - from; i++) {
          const at = (from + i) * k + from;
          const gt = i * w;
          for (let j = i; j < w; j++) sums[at + j]! += g[gt + j]!;
        }
      }
    }
  }

  /** acc (k×k, symmetric) += the sums so far, then starts again from zero. */
  addInto(acc: Float64Array): void {
    const { k, sums } = this;
    if (acc.length !== k * k) throw new Errors.TensorShape(`OrtGram.addInto: acc has ${acc.length} values, k×k = ${k * k}`);
    for (let i = 0; i < k; i++) for (let j = i; j < k; j++) acc[i * k + j]! += sums[i * k + j]!;
    for (let i = 1; i < k; i++) for (let j = 0; j < i; j++) acc[i * k + j] = acc[j * k + i]!;
    sums.fill(0);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

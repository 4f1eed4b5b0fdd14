import { attrs, node, tensor } from '../graph/build.js';
import { DataType, type OnnxNode, type OnnxTensor } from '../proto/model.js';
import type { GraphEdit } from '../graph/edit.js';
import { MS_DOMAIN } from './dq-form.js';
import { scaleTensor } from './emit-qdq.js';
import type { WeightCandidate } from './find-weights.js';
import type { WeightPlan } from './plan.js';
import { packNibbleRows } from '../../core/kernels/pack-nbits.js';
import type { QuantizedWeight } from './quantize-weight.js';

// com.microsoft MatMulNBits (layout in ONNX-NOTES): B is uint8 [N, kBlocks, bs*bits/8],
// row n holding column n of W[K, N] packed LSB-first along K; scales [N, kBlocks];
// zero points packed [N, ceil(kBlocks*bits/8)], or absent, meaning 2^(bits-1).

export { MS_DOMAIN } from './dq-form.js';

/**
 * W is [K, N] for MatMul and Gemm(transB=0), [N, K] for Gemm(transB=1); blocks run along K.
 * The stride of k in W (1: W is already rows along K), and of the block b and n in the tensor API's scale array.
 */
function layoutOf(c: WeightCandidate, bs: number) {
  const [d0, d1] = c.tensor.dims as [number, number];
  const kFirst = c.uses[0]!.blockAxis === 0;
  const K = kFirst ? d0 : d1;
  const N = kFirst ? d1 : d0;
  const kBlocks = Math.ceil(K / bs);
  return kFirst
    ? { K, N, kBlocks, strideK: N, pStrideB: N, pStrideN: 1 }
    : { K, N, kBlocks, strideK: 1, pStrideB: 1, pStrideN: kBlocks };
}

/** ORs an unsigned value into out at a bit position, LSB first (fields never straddle bytes). */
function packInto(out: Uint8Array, bitPos: number, value: number): void {
  out[bitPos >> 3]! |= value << (bitPos & 7);
}

type Ints = QuantizedWeight['q'];

/** q [K, N] row-major as [N, K], 64 × 64 tiles at a time. */
function transposeTiles(q: Ints, K: number, N: number): Ints {
  const out = new (q.constructor as new (n: number) => Ints)(q.length);
  const T = 64;
  for (let k0 = 0; k0 < K; k0 += T) {
    const kEnd = Math.min(K, k0 + T);
    for (let n0 = 0; n0 < N; n0 += T) {
      const nEnd = Math.min(N, n0 + T);
      for (let k = k0; k < kEnd; k++) {
        const from = k * N;
        for (let n = n0; n < nEnd; n++) out[n * K + k] = q[from + n]!;
      }
    }
  }
  return out;
}

/** `count` (even) 4-bit values from src[at..], offset, two a byte, the first in the low nibble. */
function packNibbles(out: Uint8Array, byteAt: number, src: Ints, at: number, count: number, offset: number): void {
  for (let j = 0; j < count; j += 2) out[byteAt + (j >> 1)] = (src[at + j]! + offset) | ((src[at + j + 1]! + offset) << 4);
}

export function emitMatMulNBits(
  edit: GraphEdit,
  c: WeightCandidate,
  plan: WeightPlan,
  w: QuantizedWeight,
  initializerDims: (name: string) => readonly number[] | undefined,
): OnnxTensor[] {
  const bits = plan.bits;
  const bs = plan.groupSize;
  const { K, N, kBlocks, strideK, pStrideB, pStrideN } = layoutOf(c, bs);
  const blob = (bs * bits) / 8;
  const rowBits = kBlocks * blob * 8;
  const symmetric = w.params.scheme === 'symmetric';
  // Symmetric values are signed; MatMulNBits stores them offset by its default zero point.
  const offset = symmetric ? 2 ** (bits - 1) : 0;
  const { q } = w;
  const zpArr = w.params.zeroPoint;
  const scaleArr = w.params.scale;

  const B = new Uint8Array((N * rowBits) / 8);
  const scales = new Float32Array(N * kBlocks);
  const zpRow = Math.ceil((kBlocks * bits) / 8);
  const zps = symmetric ? undefined : new Uint8Array(N * zpRow);
  // Rows along K, one output column n after another: W[K, N] is read in tiles (reading a
  // column of it element by element missed the cache on every value); 4-bit values are
  // packed straight from the tiles (by pack-nbits.wat where q is in a kernel arena, as the
  // model path's weight scratch is), other widths from a transposed copy.
  const fused = bits === 4 && strideK !== 1;
  if (fused) packNibbleRows(B, q as Int8Array | Uint8Array, K, N, rowBits >> 3, offset);
  const rows = strideK === 1 || fused ? q : transposeTiles(q, K, N);
  for (let n = 0; n < N; n++) {
    const rowBit = n * rowBits;
    const rowAt = n * K;
    for (let b = 0; b < kBlocks; b++) {
      const p = b * pStrideB + n * pStrideN;
      scales[n * kBlocks + b] = scaleArr[p]!;
      const zp = symmetric ? offset : zpArr[p]!;
      if (zps) packInto(zps, (n * zpRow) * 8 + b * bits, zp);
      const kStart = b * bs;
      const kEnd = Math.min(K, kStart + bs);
      if (fused) {
        // The tiles packed every full pair of k below K; an odd K leaves its last value.
        if (kEnd === K && K % 2 === 1) packInto(B, rowBit + (K - 1) * 4, q[(K - 1) * N + n]! + offset);
      } else if (bits === 4 && kEnd === kStart + bs) packNibbles(B, (rowBit + kStart * 4) >> 3, rows, rowAt + kStart, bs, offset);
      else for (let k = kStart; k < kEnd; k++) packInto(B, rowBit + k * bits, rows[rowAt + k]! + offset);
      // Padding past K dequantizes to exactly 0.
      for (let k = kEnd; k < kStart + bs; k++) packInto(B, rowBit + k * bits, zp);
    }
  }

  const bName = edit.unique(`${c.name}_Q${bits}`);
  const sName = edit.unique(`${c.name}_scales`);
  // float16 weights get float16 scales: MatMulNBits computes in its input's type.
  const tensors: OnnxTensor[] = [tensor(bName, DataType.uint8, [N, kBlocks, blob], B), scaleTensor(sName, [N, kBlocks], scales, c.uses[0]!.valueType)];
  let zName = '';
  if (zps) {
    zName = edit.unique(`${c.name}_zero_points`);
    tensors.push(tensor(zName, DataType.uint8, [N, zpRow], zps));
  }

  const attributes = () => [attrs.int('K', K), attrs.int('N', N), attrs.int('bits', bits), attrs.int('block_size', bs)];
  for (const use of c.uses) {
    edit.replaceNode(use.nodeIndex, rewriteUse(edit, use.node, [bName, sName, zName], attributes(), N, initializerDims), use.scope);
  }
  edit.replaceWeight(c, tensors);
  edit.forgetName(c.name);
  dropIdentities(edit, c);
  edit.requireOpset(MS_DOMAIN, 1);
  return tensors;
}

/** MatMul(A, W) or Gemm(A, W, C) → MatMulNBits(A, B, scales, zp, g_idx, bias) [+ Add(C)]. */
export function rewriteUse(
  edit: GraphEdit,
  n: OnnxNode,
  [bName, sName, zName]: string[],
  attributes: OnnxNode['attributes'],
  N: number,
  initializerDims: (name: string) => readonly number[] | undefined,
): OnnxNode[] {
  const bias = n.opType === 'Gemm' ? (n.inputs[2] ?? '') : '';
  const biasDims = bias ? initializerDims(bias) : undefined;
  // A [N] bias rides in MatMulNBits' bias input; any other C (broadcast [1, N], [M, N], a
  // computed tensor) is added afterwards, as Gemm would.
  const inSlot = biasDims !== undefined && biasDims.length === 1 && biasDims[0] === N;
  const inputs = [n.inputs[0]!, bName!, sName!, zName!];
  if (inSlot) inputs.push('', bias);
  while (inputs[inputs.length - 1] === '') inputs.pop();
  const name = n.name || edit.unique('MatMulNBits');
  if (!bias || inSlot) return [node('MatMulNBits', inputs, n.outputs, { name, domain: MS_DOMAIN, attributes })];
  const tmp = edit.unique(`${n.outputs[0]}_matmul`);
  return [
    node('MatMulNBits', inputs, [tmp], { name, domain: MS_DOMAIN, attributes }),
    node('Add', [tmp, bias], n.outputs, { name: edit.unique(`${name}_bias`) }),
  ];
}

/**
 * The Identity, Transpose and Cast nodes between the weight and a consumer that was
 * replaced read a name that no longer exists: they go too (plan.ts allows this only when
 * nothing else reads them). The weight was quantized in its own layout, with the axes the
 * consumer sees mapped back through the Transposes.
 */
export function dropIdentities(edit: GraphEdit, c: WeightCandidate): void {
  for (const u of c.uses) {
    for (const v of u.viaNodes) {
      edit.replaceNode(v.nodeIndex, [], v.scope);
      edit.forgetName(v.output);
    }
  }
}

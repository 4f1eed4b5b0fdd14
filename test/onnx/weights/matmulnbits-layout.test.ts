import assert from 'node:assert/strict';
import { test } from 'node:test';
import { quantize } from '../../../src/core/quantize.js';
import { attrs, floatTensor, graph, model, node, valueInfo } from '../../../src/onnx/graph/build.js';
import { DataType, type OnnxModel } from '../../../src/onnx/proto/model.js';
import { modelQuantOptions } from '../../../src/onnx/weights/options.js';
import { quantizeModel } from '../../../src/onnx/weights/quantize-model.js';
import { randn } from '../models.js';

// MatMulNBits' B, read back element by element from the layout ONNX-NOTES gives (row n is
// column n of W[K, N], packed LSB-first along K, blocks padded with the zero point), must
// hold the integers the tensor API gives for the same weight: every width, both schemes,
// odd K, partial last blocks, both orientations (MatMul W[K, N], Gemm transB W[N, K]).

function oneWeight(K: number, N: number, transB: boolean): OnnxModel {
  const dims = transB ? [N, K] : [K, N];
  const W = floatTensor('W', dims, randn(K * N, K * 31 + N));
  const n = transB ? node('Gemm', ['x', 'W'], ['y'], { name: 'g', attributes: [attrs.int('transB', 1)] }) : node('MatMul', ['x', 'W'], ['y'], { name: 'mm' });
  return model(graph({ nodes: [n], initializers: [W], inputs: [valueInfo('x', DataType.float32, [1, K])], outputs: [valueInfo('y', DataType.float32, [1, N])] }), { opset: 17 });
}

/** The value at bit position `bit` of `bytes`, `bits` wide (fields never straddle bytes). */
function field(bytes: Uint8Array, bit: number, bits: number): number {
  return (bytes[bit >> 3]! >> (bit & 7)) & ((1 << bits) - 1);
}

const CASES: [number, number, number][] = [
  [64, 48, 16],
  [31, 20, 16],
  [100, 33, 32],
  [257, 65, 128],
  [130, 70, 64],
];

for (const bits of [2, 4, 8] as const) {
  for (const scheme of ['symmetric', 'asymmetric'] as const) {
    for (const transB of [false, true]) {
      test(`MatMulNBits B holds the tensor API's integers: ${bits}-bit ${scheme}, ${transB ? 'Gemm transB' : 'MatMul'}`, () => {
        for (const [K, N, bs] of CASES) {
          const input = oneWeight(K, N, transB);
          const r = quantizeModel(input, modelQuantOptions({ bits, scheme, format: 'matmulnbits', granularity: 'per_group', groupSize: bs, minElements: 1 }));
          const nb = r.model.graph.nodes.find((x) => x.opType === 'MatMulNBits');
          assert.ok(nb, `${K}x${N}: a MatMulNBits node`);
          const inits = new Map(r.model.graph.initializers.map((t) => [t.name, t]));
          const B = inits.get(nb.inputs[1]!)!.rawData!;
          const zp = nb.inputs[3] ? inits.get(nb.inputs[3])!.rawData! : undefined;
          // The tensor API, blocks along K: axis 0 of W[K, N], axis 1 of W[N, K].
          const w = input.graph.initializers[0]!;
          const values = new Float32Array(w.rawData!.buffer.slice(w.rawData!.byteOffset, w.rawData!.byteOffset + w.rawData!.length));
          const want = quantize(values, w.dims, { bits, scheme, granularity: 'per_group', axis: transB ? 1 : 0, groupSize: bs, calibration: 'minmax', percentile: 99.99, method: 'rtn' });
          const kBlocks = Math.ceil(K / bs);
          const rowBits = kBlocks * bs * bits;
          const zpRow = Math.ceil((kBlocks * bits) / 8);
          const offset = scheme === 'symmetric' ? 2 ** (bits - 1) : 0;
          let bad = 0;
          for (let n = 0; n < N; n++) {
            for (let k = 0; k < kBlocks * bs; k++) {
              const got = field(B, n * rowBits + k * bits, bits);
              const b = Math.floor(k / bs);
              const z = zp ? field(zp, n * zpRow * 8 + b * bits, bits) : offset;
              // Past K: the zero point, so the padding dequantizes to 0.
              const expected = k < K ? Number(want.q[transB ? n * K + k : k * N + n]) + offset : z;
              if (got !== expected && bad++ < 3) assert.fail(`${K}x${N} bs ${bs}: B[n=${n}, k=${k}] = ${got}, want ${expected}`);
            }
          }
          assert.equal(bad, 0);
        }
      });
    }
  }
}

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeModel } from '../proto/decode.js';
import { loadOrt } from './ort.js';

// What onnxruntime's CPU provider made of a model: it writes its optimized graph
// (optimizedModelFilePath, default optimization), we decode it with our own decoder and
// count the op types. Integer kernels (QLinearConv, QLinearMatMul, QGemm, QLinearAdd...)
// are the node units it fused; a Conv or MatMul still there runs in float.

export const FUSED_OP_TYPES = new Set([
  'QLinearConv',
  'QLinearMatMul',
  'QGemm',
  'QLinearAdd',
  'QLinearMul',
  'QLinearConcat',
  'QLinearAveragePool',
  'QLinearGlobalAveragePool',
  'QLinearSigmoid',
  'QLinearLeakyRelu',
  'QLinearSoftmax',
  'QLinearWhere',
  'QLinearConvTranspose',
  'MatMulIntegerToFloat',
  'DynamicQuantizeMatMul',
  'MatMulNBits',
  'ConvInteger',
  'MatMulInteger',
]);

const FLOAT_COMPUTE = new Set(['Conv', 'ConvTranspose', 'MatMul', 'Gemm', 'FusedConv', 'FusedMatMul', 'FusedGemm', 'NchwcConv']);

export interface FusedOps {
  status: 'ok';
  /** Integer kernels in the optimized graph, by op type. */
  fused: Record<string, number>;
  /** Float Conv/MatMul/Gemm still in the optimized graph. */
  float_compute: Record<string, number>;
  quantize_linear: number;
  dequantize_linear: number;
  nodes: number;
}

export type FusedOpsReport = FusedOps | { status: 'skipped'; reason: string };

export function countOps(opTypes: readonly string[]): FusedOps {
  const fused: Record<string, number> = {};
  const floatCompute: Record<string, number> = {};
  let q = 0;
  let dq = 0;
  for (const op of opTypes) {
    if (FUSED_OP_TYPES.has(op)) fused[op] = (fused[op] ?? 0) + 1;
    else if (FLOAT_COMPUTE.has(op)) floatCompute[op] = (floatCompute[op] ?? 0) + 1;
    else if (op === 'QuantizeLinear') q++;
    else if (op === 'DequantizeLinear') dq++;
  }
  return { status: 'ok', fused, float_compute: floatCompute, quantize_linear: q, dequantize_linear: dq, nodes: opTypes.length };
}

export async function fusedOps(
  model: { bytes: Uint8Array; externalData?: { path: string; data: Uint8Array }[] | undefined } | { path: string },
): Promise<FusedOpsReport> {
  const ort = await loadOrt();
  const dir = mkdtempSync(join(tmpdir(), 'quantd-fused-'));
  const out = join(dir, 'optimized.onnx');
  try {
    const options = { intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 3 as const, graphOptimizationLevel: 'all' as const, optimizedModelFilePath: out };
    const s = 'path' in model ? await ort.InferenceSession.create(model.path, options) : await ort.InferenceSession.create(model.bytes, { ...options, externalData: model.externalData });
    await s.release();
    const optimized = decodeModel(readFileSync(out));
    return countOps(optimized.graph.nodes.map((n) => n.opType));
  } catch (err) {
    return { status: 'skipped', reason: `could not read onnxruntime's optimized graph: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]!.slice(0, 300)}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

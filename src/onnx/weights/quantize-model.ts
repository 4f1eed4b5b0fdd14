import { checkGraph } from '../graph/check.js';
import { defaultOpset, type OnnxModel, type OnnxTensor } from '../proto/model.js';
import { readFloat32, storedBytes, type ExternalData } from '../proto/tensor-data.js';
import { GraphEdit } from '../graph/edit.js';
import { emitDynamic, type ActivationQuant } from './emit-dynamic.js';
import { emitMatMulNBits } from './emit-matmulnbits.js';
import { emitQdq } from './emit-qdq.js';
import { emitFp8, fp8TypeOf, quantizeFp8Weight } from './emit-fp8.js';
import { emitNf4, NF4_NOTE, quantizeNf4Weight } from './emit-nf4.js';
import { reportFromSums } from '../../core/metrics.js';
import { quantize } from '../../core/quantize.js';
import { findWeights, type Skipped } from './find-weights.js';
import type { ModelQuantOptions } from './options.js';
import { checkOptionsForModel, planWeight } from './plan.js';
import { quantizeWeight, specFor } from './quantize-weight.js';
import { rankTensors, tensorRow, type TensorRow } from './report.js';

export interface ModelProgress {
  tensorsDone: number;
  tensorsTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

export interface ModelQuantResult {
  model: OnnxModel;
  tensors: TensorRow[];
  skipped: Skipped[];
  opset: number | undefined;
  addedOpsets: { domain: string; version: number }[];
}

export interface QuantizeModelHooks {
  external?: ExternalData | undefined;
  onProgress?: ((p: ModelProgress) => void) | undefined;
}

function bytesOf(tensors: OnnxTensor[]): number {
  return tensors.reduce((s, t) => s + storedBytes(t), 0);
}

/** The checks that refuse a model or options before any work: a 400 that names the culprit. */
export function preflight(model: OnnxModel, opts: ModelQuantOptions): void {
  checkGraph(model);
  checkOptionsForModel(opts, defaultOpset(model));
}

/**
 * Quantizes the weights of a model, one at a time (only one weight's float copy is alive
 * at once). The input model is not modified; the result shares every untouched node and
 * initializer with it.
 */
export function quantizeModel(model: OnnxModel, opts: ModelQuantOptions, hooks: QuantizeModelHooks = {}): ModelQuantResult {
  preflight(model, opts);
  const opset = defaultOpset(model);
  const { candidates, skipped } = findWeights(model, opts);
  const edit = new GraphEdit(model);
  const dims = new Map(model.graph.initializers.map((t) => [t.name, t.dims] as const));
  const activations: ActivationQuant = new Map();
  const tensors: TensorRow[] = [];
  const bytesTotal = candidates.reduce((s, c) => s + 4 * c.elements, 0);
  let bytesDone = 0;
  hooks.onProgress?.({ tensorsDone: 0, tensorsTotal: candidates.length, bytesDone, bytesTotal });
  candidates.forEach((c, i) => {
    const plan = planWeight(c, opts, opset);
    if ('skip' in plan) skipped.push({ name: c.name, reason: plan.skip });
    else {
      const values = readFloat32(c.tensor, hooks.external);
      if (plan.format === 'nf4') {
        const w = quantizeNf4Weight(values, c, plan);
        const written = emitNf4(edit, c, plan, w);
        const row = tensorRow(c, plan, { params: { scale: w.absmax }, error: w.error }, 4 * c.elements, bytesOf(written));
        row.note = row.note ? `${row.note}; ${NF4_NOTE}` : NF4_NOTE;
        tensors.push(row);
      } else if (plan.format === 'fp8e4m3' || plan.format === 'fp8e5m2') {
        const w = quantizeFp8Weight(values, c.tensor.dims, plan, fp8TypeOf(plan.format));
        const written = emitFp8(edit, c, plan, w);
        const row = tensorRow(c, plan, { params: { scale: w.scale }, error: w.error }, 4 * c.elements, bytesOf(written));
        // Beside it, what int8 reaches on the same weight with the same granularity.
        const int8 = quantize(values, c.tensor.dims, specFor({ ...plan, bits: 8 }, { scheme: 'symmetric', calibration: 'minmax', percentile: opts.percentile }));
        row.int8_snr_db = reportFromSums(int8.sums).snr_db;
        tensors.push(row);
      } else {
        const w = quantizeWeight(values, c.tensor.dims, plan, opts);
        const written =
          plan.format === 'qdq'
            ? emitQdq(edit, c, plan, w)
            : plan.format === 'matmulnbits'
              ? emitMatMulNBits(edit, c, plan, w, (name) => dims.get(name))
              : emitDynamic(edit, model.graph.nodes, c, w, activations);
        tensors.push(tensorRow(c, plan, w, 4 * c.elements, bytesOf(written)));
      }
    }
    bytesDone += 4 * c.elements;
    hooks.onProgress?.({ tensorsDone: i + 1, tensorsTotal: candidates.length, bytesDone, bytesTotal });
  });
  return { model: edit.apply(), tensors: rankTensors(tensors), skipped, opset, addedOpsets: edit.addedOpsets };
}

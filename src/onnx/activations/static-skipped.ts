import { DataType, dataTypeName, type OnnxModel } from '../proto/model.js';
import { findWeights, type Skipped } from '../weights/find-weights.js';
import { MODEL_OP_TYPES, type ModelQuantOptions } from '../weights/options.js';
import type { TensorRow } from '../weights/report.js';
import type { StaticOutcome } from './quantize-static.js';

// The report's invariant for format=static too: every float constant of min_elements or more
// is in `tensors` (quantized) or in `skipped` with the reason. Static placement quantizes the
// float32 weights its rules reach (Conv, MatMul, Gemm...); the weight census of the other
// formats (find-weights.ts) says which constants are weights at all, and what is left of it is
// listed here rather than dropped from the report (a float16 model came back with nothing
// quantized, nothing skipped and weights_float_bytes 0).

export interface StaticCensus {
  skipped: Skipped[];
  floatWeightBytes: number;
  quantizedWeightBytes: number;
}

export function staticCensus(model: OnnxModel, opts: ModelQuantOptions, rows: readonly TensorRow[], o: StaticOutcome): StaticCensus {
  const quantized = new Set(rows.map((r) => r.name));
  const byFallback = new Map(o.fallback.excluded.map((e) => [e.node, e]));
  const byUser = new Set(o.userExcluded);
  // Every op type: a weight the user's op_types leaves out is still a weight static did not quantize.
  const found = findWeights(model, { ...opts, opTypes: [...MODEL_OP_TYPES], exclude: [] });
  const skipped: Skipped[] = byFallback.size ? [...byFallback.values()].map((e) => ({ name: e.node, reason: `kept float by the fallback: ${e.reason}` })) : [];
  for (const s of found.skipped) if (!quantized.has(s.name)) skipped.push(s);
  for (const c of found.candidates) {
    if (quantized.has(c.name)) continue;
    const where = c.scopeLabel === 'main graph' ? '' : ` (in ${c.scopeLabel})`;
    const nodes = c.uses.map((u) => u.node.name);
    const fallback = nodes.find((n) => byFallback.has(n));
    const user = nodes.find((n) => byUser.has(n));
    const ops = [...new Set(c.uses.map((u) => u.opType))].join(', ');
    let reason: string;
    if (c.tensor.dataType !== DataType.float32) {
      reason = `a ${dataTypeName(c.tensor.dataType)} weight: format=static quantizes float32 models (weights and activations); convert the model to float32, or use a weight-only format`;
    } else if (user !== undefined) reason = `its node '${user}' is excluded (exclude=)`;
    else if (fallback !== undefined) reason = `its node '${fallback}' was kept float by the fallback`;
    else if (c.scopeLabel !== 'main graph') reason = 'a weight read in a subgraph: static calibration does not reach tensors inside subgraphs';
    else reason = `read by ${ops}, where format=static places no Q/DQ (see the placement rules); left float: a weight-only format quantizes it`;
    skipped.push({ name: c.name, reason: reason + where });
  }
  return {
    skipped,
    floatWeightBytes: found.floatBytes,
    quantizedWeightBytes: rows.reduce((s, r) => s + r.original_bytes, 0),
  };
}

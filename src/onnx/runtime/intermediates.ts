import { valueInfo } from '../graph/build.js';
import { DataType, type OnnxModel } from '../proto/model.js';

/** The model with these tensors as extra (float) graph outputs, so a session returns them. */
export function exposeTensors(model: OnnxModel, names: readonly string[]): OnnxModel {
  const have = new Set(model.graph.outputs.map((o) => o.name));
  const extra = names.filter((n) => !have.has(n)).map((n) => valueInfo(n, DataType.float32, undefined));
  return { ...model, graph: { ...model.graph, outputs: [...model.graph.outputs, ...extra] } };
}

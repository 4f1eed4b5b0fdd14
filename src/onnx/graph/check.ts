import { Errors } from '../../errors.js';
import type { OnnxModel } from '../proto/model.js';

/**
 * Refuses graphs that cannot be right before we touch them: a node input that nothing
 * defines (a missing initializer, a typo), or a graph output nothing produces. Subgraph
 * bodies may refer to outer names; they are opaque here and onnxruntime checks them.
 */
export function checkGraph(model: OnnxModel): void {
  const g = model.graph;
  const defined = new Set<string>(['']);
  for (const v of g.inputs) defined.add(v.name);
  for (const t of g.initializers) defined.add(t.name);
  for (const name of g.sparseInitializerNames) defined.add(name);
  for (const n of g.nodes) for (const o of n.outputs) defined.add(o);
  g.nodes.forEach((n, i) => {
    n.inputs.forEach((name, slot) => {
      if (!defined.has(name)) {
        throw new Errors.Onnx(
          `ONNX graph: node ${i} '${n.name || '(unnamed)'}' (${n.opType}) input ${slot} '${name}' is not a graph input, an initializer or a node output`,
        );
      }
    });
  });
  for (const out of g.outputs) {
    if (!defined.has(out.name)) throw new Errors.Onnx(`ONNX graph: output '${out.name}' is not produced by any node, input or initializer`);
  }
}

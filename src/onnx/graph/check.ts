import { Errors } from '../../errors.js';
import type { OnnxModel } from '../proto/model.js';

/**
 * Refuses graphs that ONNX itself rejects before we touch them (onnx.checker's rules for
 * the main graph): every name is defined once (single static assignment: no two
 * initializers, graph inputs or node outputs share a name, and a node output never
 * redefines an input or initializer), every node input is defined, every graph output is
 * produced. A name listed both as a graph input and an initializer is allowed (IR < 4
 * models list every initializer as an input). Subgraph bodies may read outer names; they
 * are opaque here and onnxruntime checks them.
 */
export function checkGraph(model: OnnxModel): void {
  const g = model.graph;
  // Where each name was first defined, to say so when it is defined again.
  const definedBy = new Map<string, string>();
  const define = (name: string, what: string, kind: 'input' | 'initializer' | 'output') => {
    if (name === '') return;
    const before = definedBy.get(name);
    if (before === undefined) {
      definedBy.set(name, what);
      return;
    }
    if (kind === 'initializer' && before.startsWith('graph input')) return;
    throw new Errors.Onnx(`ONNX graph: '${name}' is defined twice, as ${before} and as ${what}; ONNX requires every name to be defined once`);
  };
  const inputs = new Set<string>();
  for (const v of g.inputs) {
    if (inputs.has(v.name)) throw new Errors.Onnx(`ONNX graph: '${v.name}' is listed twice as a graph input`);
    inputs.add(v.name);
    define(v.name, 'graph input', 'input');
  }
  const initializers = new Set<string>();
  const initializer = (name: string, what: string) => {
    if (initializers.has(name)) throw new Errors.Onnx(`ONNX graph: two initializers are named '${name}'; ONNX requires initializer names to be unique`);
    initializers.add(name);
    define(name, what, 'initializer');
  };
  for (const t of g.initializers) initializer(t.name, 'an initializer');
  for (const name of g.sparseInitializerNames) initializer(name, 'a sparse initializer');
  g.nodes.forEach((n, i) => {
    for (const o of n.outputs) define(o, `output of node ${i} '${n.name || '(unnamed)'}' (${n.opType})`, 'output');
  });
  g.nodes.forEach((n, i) => {
    n.inputs.forEach((name, slot) => {
      if (name !== '' && !definedBy.has(name)) {
        throw new Errors.Onnx(
          `ONNX graph: node ${i} '${n.name || '(unnamed)'}' (${n.opType}) input ${slot} '${name}' is not a graph input, an initializer or a node output`,
        );
      }
    });
  });
  for (const out of g.outputs) {
    if (!definedBy.has(out.name)) throw new Errors.Onnx(`ONNX graph: output '${out.name}' is not produced by any node, input or initializer`);
  }
}

import { DataType, attr, defaultOpset, type OnnxModel, type OnnxNode, type OnnxTensor } from '../proto/model.js';
import { tensorTypes } from './tensor-types.js';

// Who produces and who reads each tensor of the main graph, which names are constants
// (initializers or Constant nodes) and which are float32: what the placement rules ask.

export interface Constant {
  tensor: OnnxTensor;
  /** Index of the Constant (or Identity-of-a-constant) node holding it, when it is not an initializer. */
  constantNode: number | undefined;
}

export class GraphIndex {
  readonly model: OnnxModel;
  readonly nodes: readonly OnnxNode[];
  readonly opset: number;
  readonly producer = new Map<string, number>();
  readonly consumers = new Map<string, number[]>();
  readonly constants = new Map<string, Constant>();
  readonly graphInputs: Set<string>;
  readonly graphOutputs: Set<string>;
  readonly #types: Map<string, number>;

  constructor(model: OnnxModel) {
    this.model = model;
    this.nodes = model.graph.nodes;
    this.opset = defaultOpset(model) ?? 0;
    const g = model.graph;
    for (const t of g.initializers) this.constants.set(t.name, { tensor: t, constantNode: undefined });
    g.nodes.forEach((n, i) => {
      n.outputs.forEach((o) => o && this.producer.set(o, i));
      const seen = new Set<string>();
      for (const name of n.inputs) {
        if (!name || seen.has(name)) continue;
        seen.add(name);
        const list = this.consumers.get(name) ?? [];
        list.push(i);
        this.consumers.set(name, list);
      }
      const v = n.opType === 'Constant' && (n.domain === '' || n.domain === 'ai.onnx') ? attr(n, 'value')?.t : undefined;
      if (v && n.outputs.length === 1) this.constants.set(n.outputs[0]!, { tensor: v, constantNode: i });
      // PyTorch's exporter shares equal initializers through Identity nodes: the alias is a
      // constant too, held by that node (a rewrite replaces the node, as it would a Constant).
      const aliased = n.opType === 'Identity' && n.domain === '' ? this.constants.get(n.inputs[0] ?? '') : undefined;
      if (aliased && n.outputs.length === 1) this.constants.set(n.outputs[0]!, { tensor: aliased.tensor, constantNode: i });
    });
    const inits = new Set(g.initializers.map((t) => t.name));
    this.graphInputs = new Set(g.inputs.map((v) => v.name).filter((n) => !inits.has(n)));
    this.graphOutputs = new Set(g.outputs.map((v) => v.name));
    this.#types = tensorTypes(model);
  }

  isFloat(name: string): boolean {
    return this.#types.get(name) === DataType.float32;
  }

  isConstant(name: string): boolean {
    return this.constants.has(name) && !this.graphInputs.has(name);
  }

  readers(name: string): number[] {
    return this.consumers.get(name) ?? [];
  }

  /** The float constant a scalar input holds (Clip's min/max), or undefined. */
  scalar(name: string | undefined): number | undefined {
    const c = name ? this.constants.get(name) : undefined;
    if (!c || c.tensor.dataType !== DataType.float32 || !c.tensor.rawData || c.tensor.rawData.length !== 4) return undefined;
    return new DataView(c.tensor.rawData.buffer, c.tensor.rawData.byteOffset, 4).getFloat32(0, true);
  }
}

import type { OnnxModel, OnnxNode, OnnxTensor } from '../proto/model.js';

// Collects the rewrites of one quantization pass and applies them at once, leaving the
// input model untouched (validation still runs it). Nodes and initializers that are not
// rewritten are the very same objects, so they are written back byte for byte.

export class GraphEdit {
  readonly #model: OnnxModel;
  readonly #names = new Set<string>();
  readonly #front: OnnxNode[] = [];
  readonly #nodeReplacements = new Map<number, OnnxNode[]>();
  readonly #after = new Map<number, OnnxNode[]>();
  readonly #initReplacements = new Map<string, OnnxTensor[]>();
  readonly #added: OnnxTensor[] = [];
  readonly #droppedInputs = new Set<string>();
  readonly #droppedValueInfo = new Set<string>();
  readonly #opsets = new Map<string, number>();
  #irVersion: number;

  constructor(model: OnnxModel) {
    this.#model = model;
    this.#irVersion = model.irVersion;
    const g = model.graph;
    for (const t of g.initializers) this.#names.add(t.name);
    for (const v of [...g.inputs, ...g.outputs, ...g.valueInfo]) this.#names.add(v.name);
    for (const n of g.nodes) {
      if (n.name) this.#names.add(n.name);
      for (const o of n.outputs) this.#names.add(o);
    }
  }

  /** base, or base_1, base_2, ... whichever no tensor or node of the graph uses yet. */
  unique(base: string): string {
    let name = base;
    for (let i = 1; this.#names.has(name); i++) name = `${base}_${i}`;
    this.#names.add(name);
    return name;
  }

  /** Nodes whose inputs are all initializers go first: that keeps the order topological. */
  prepend(node: OnnxNode): void {
    this.#front.push(node);
  }

  /** Nodes that read the output of node `index` go right after it. */
  insertAfter(index: number, node: OnnxNode): void {
    const list = this.#after.get(index) ?? [];
    list.push(node);
    this.#after.set(index, list);
  }

  replaceNode(index: number, nodes: OnnxNode[]): void {
    this.#nodeReplacements.set(index, nodes);
  }

  /** The weight's initializer is replaced, in place, by these tensors ([] removes it). */
  replaceInitializer(name: string, tensors: OnnxTensor[]): void {
    this.#initReplacements.set(name, tensors);
  }

  addInitializers(tensors: OnnxTensor[]): void {
    this.#added.push(...tensors);
  }

  /**
   * A weight's replacement tensors take its place: its initializer is replaced in place, or
   * its Constant node removed and the tensors added as initializers.
   */
  replaceWeight(weight: { name: string; constantNode: number | undefined }, tensors: OnnxTensor[]): void {
    if (weight.constantNode !== undefined) {
      this.replaceNode(weight.constantNode, []);
      this.addInitializers(tensors);
    } else {
      this.replaceInitializer(weight.name, tensors);
    }
  }

  /** The weight's name no longer exists anywhere (no node produces it any more). */
  forgetName(name: string): void {
    this.dropInput(name);
    this.dropValueInfo(name);
  }

  /** name stops being an initializer: it must leave graph.input (IR < 4 lists them there). */
  dropInput(name: string): void {
    this.#droppedInputs.add(name);
  }

  /** name no longer exists at all: its value_info entry would be stale. */
  dropValueInfo(name: string): void {
    this.#droppedValueInfo.add(name);
  }

  requireOpset(domain: string, version: number): void {
    const have = this.#model.opsetImports.find((o) => o.domain === domain)?.version;
    if (have === undefined || have < version) this.#opsets.set(domain, Math.max(version, this.#opsets.get(domain) ?? 0));
  }

  requireIrVersion(version: number): void {
    this.#irVersion = Math.max(this.#irVersion, version);
  }

  /** Opset imports this edit adds, for the report. */
  get addedOpsets(): { domain: string; version: number }[] {
    return [...this.#opsets].map(([domain, version]) => ({ domain, version }));
  }

  apply(): OnnxModel {
    const g = this.#model.graph;
    const nodes = [...this.#front];
    g.nodes.forEach((n, i) => nodes.push(...(this.#nodeReplacements.get(i) ?? [n]), ...(this.#after.get(i) ?? [])));
    const initializers = g.initializers.flatMap((t) => this.#initReplacements.get(t.name) ?? [t]);
    initializers.push(...this.#added);
    const opsetImports = this.#model.opsetImports
      .filter((o) => !this.#opsets.has(o.domain))
      .concat([...this.#opsets].map(([domain, version]) => ({ domain, version })));
    return {
      ...this.#model,
      irVersion: this.#irVersion,
      opsetImports,
      graph: {
        ...g,
        nodes,
        initializers,
        inputs: g.inputs.filter((v) => !this.#droppedInputs.has(v.name)),
        valueInfo: g.valueInfo.filter((v) => !this.#droppedValueInfo.has(v.name)),
      },
    };
  }
}

import type { OnnxAttribute, OnnxGraph, OnnxModel, OnnxNode, OnnxTensor } from '../proto/model.js';
import { ModelScopes } from './scopes.js';

// Collects the rewrites of one quantization pass and applies them at once, leaving the
// input model untouched (validation still runs it). Nodes and initializers that are not
// rewritten are the very same objects, so they are written back byte for byte; a node
// whose subgraph changed is re-encoded, its other attributes still from their bytes.
//
// Every edit names the graph it applies to (`scope`, default the main graph): a weight's
// DequantizeLinear goes in the scope that defines the weight, a rewritten consumer stays in
// its own scope. Names are unique over all scopes, so nothing new shadows an outer name.

class ScopeEdits {
  readonly front: OnnxNode[] = [];
  readonly nodeReplacements = new Map<number, OnnxNode[]>();
  readonly after = new Map<number, OnnxNode[]>();
  readonly initReplacements = new Map<string, OnnxTensor[]>();
  readonly added: OnnxTensor[] = [];
  readonly droppedInputs = new Set<string>();
  readonly droppedValueInfo = new Set<string>();
}

export class GraphEdit {
  readonly #model: OnnxModel;
  readonly #names: Set<string>;
  readonly #scopes = new Map<OnnxGraph, ScopeEdits>();
  readonly #forgotten = new Set<string>();
  readonly #opsets = new Map<string, number>();
  #irVersion: number;

  constructor(model: OnnxModel, scopes: ModelScopes = new ModelScopes(model)) {
    this.#model = model;
    this.#irVersion = model.irVersion;
    this.#names = scopes.allNames();
  }

  #at(scope: OnnxGraph | undefined): ScopeEdits {
    const g = scope ?? this.#model.graph;
    let e = this.#scopes.get(g);
    if (!e) this.#scopes.set(g, (e = new ScopeEdits()));
    return e;
  }

  /** base, or base_1, base_2, ... whichever no tensor or node of any graph uses yet. */
  unique(base: string): string {
    return uniqueIn(this.#names, base);
  }

  /** Nodes whose inputs are all initializers (or outer-scope names) go first: that keeps the order topological. */
  prepend(node: OnnxNode, scope?: OnnxGraph): void {
    this.#at(scope).front.push(node);
  }

  /** Nodes that read the output of node `index` go right after it. */
  insertAfter(index: number, node: OnnxNode, scope?: OnnxGraph): void {
    const e = this.#at(scope);
    const list = e.after.get(index) ?? [];
    list.push(node);
    e.after.set(index, list);
  }

  replaceNode(index: number, nodes: OnnxNode[], scope?: OnnxGraph): void {
    this.#at(scope).nodeReplacements.set(index, nodes);
  }

  /** The weight's initializer is replaced, in place, by these tensors ([] removes it). */
  replaceInitializer(name: string, tensors: OnnxTensor[], scope?: OnnxGraph): void {
    this.#at(scope).initReplacements.set(name, tensors);
  }

  addInitializers(tensors: OnnxTensor[], scope?: OnnxGraph): void {
    this.#at(scope).added.push(...tensors);
  }

  /**
   * A weight's replacement tensors take its place in the scope that defines it: its
   * initializer is replaced in place, or its Constant node removed and the tensors added as
   * initializers.
   */
  replaceWeight(weight: { name: string; constantNode: number | undefined; scope?: OnnxGraph | undefined }, tensors: OnnxTensor[]): void {
    if (weight.constantNode !== undefined) {
      this.replaceNode(weight.constantNode, [], weight.scope);
      this.addInitializers(tensors, weight.scope);
    } else {
      this.replaceInitializer(weight.name, tensors, weight.scope);
    }
  }

  /** The weight's name no longer exists anywhere (no node produces it any more). */
  forgetName(name: string): void {
    this.#forgotten.add(name);
  }

  /** name stops being an initializer: it must leave graph.input (IR < 4 lists them there). */
  dropInput(name: string, scope?: OnnxGraph): void {
    this.#at(scope).droppedInputs.add(name);
  }

  /** name no longer exists at all: its value_info entry would be stale. */
  dropValueInfo(name: string, scope?: OnnxGraph): void {
    this.#at(scope).droppedValueInfo.add(name);
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
    // Below IR 4 every initializer must also be a graph input (onnx.checker refuses the model,
    // "in initializer but not in graph input"); the tensors an edit writes are not listed
    // there, and IR 4, which drops that rule, changes nothing else.
    const writes = [...this.#scopes.values()].some((e) => e.added.length > 0 || [...e.initReplacements.values()].some((t) => t.length > 0));
    if (writes) this.requireIrVersion(4);
    const opsetImports = this.#model.opsetImports
      .filter((o) => !this.#opsets.has(o.domain))
      .concat([...this.#opsets].map(([domain, version]) => ({ domain, version })));
    return { ...this.#model, irVersion: this.#irVersion, opsetImports, graph: this.#graph(this.#model.graph) };
  }

  /** The graph with its edits and its nested graphs' edits; the same object when nothing changed. */
  #graph(g: OnnxGraph): OnnxGraph {
    const e = this.#scopes.get(g);
    let changed = e !== undefined || g.valueInfo.some((v) => this.#forgotten.has(v.name)) || g.inputs.some((v) => this.#forgotten.has(v.name));
    const withSubgraphs = (n: OnnxNode): OnnxNode => {
      const next = this.#node(n);
      if (next !== n) changed = true;
      return next;
    };
    const nodes: OnnxNode[] = [];
    if (e) nodes.push(...e.front.map(withSubgraphs));
    g.nodes.forEach((n, i) => {
      const replaced = e?.nodeReplacements.get(i);
      nodes.push(...(replaced ?? [withSubgraphs(n)]), ...(e?.after.get(i) ?? []));
    });
    if (!changed) return g;
    const initializers = g.initializers.flatMap((t) => e?.initReplacements.get(t.name) ?? [t]);
    if (e) initializers.push(...e.added);
    const dropInput = (name: string) => (e?.droppedInputs.has(name) ?? false) || this.#forgotten.has(name);
    const dropInfo = (name: string) => (e?.droppedValueInfo.has(name) ?? false) || this.#forgotten.has(name);
    return {
      ...g,
      nodes,
      initializers,
      inputs: g.inputs.filter((v) => !dropInput(v.name)),
      valueInfo: g.valueInfo.filter((v) => !dropInfo(v.name)),
    };
  }

  /** A node whose subgraphs changed gets new attributes (and loses its stored bytes). */
  #node(n: OnnxNode): OnnxNode {
    let changed = false;
    const attributes = n.attributes.map((a): OnnxAttribute => {
      if (a.g) {
        const g = this.#graph(a.g);
        if (g === a.g) return a;
        changed = true;
        return { name: a.name, type: a.type, g };
      }
      if (a.graphs) {
        const graphs = a.graphs.map((x) => this.#graph(x));
        if (graphs.every((x, i) => x === a.graphs![i])) return a;
        changed = true;
        return { name: a.name, type: a.type, graphs };
      }
      return a;
    });
    return changed ? { ...n, attributes, src: undefined } : n;
  }
}

/** base, or base_1, base_2, ... whichever `taken` does not hold yet; the name returned is added to it. */
export function uniqueIn(taken: Set<string>, base: string): string {
  let name = base;
  for (let i = 1; taken.has(name); i++) name = `${base}_${i}`;
  taken.add(name);
  return name;
}

import { AttrType, type OnnxGraph, type OnnxModel, type OnnxNode, type OnnxTensor } from '../proto/model.js';

// Names and scopes: the main graph and every subgraph body (If branches, Loop and Scan
// bodies, nested to any depth), what each defines and who reads each definition. A name
// read in a subgraph resolves to the innermost enclosing scope that defines it, as ONNX
// scoping says, so an outer-scope weight read by a MatMul inside an If branch has that
// MatMul as a reader.

export interface Scope {
  graph: OnnxGraph;
  parent: Scope | undefined;
  depth: number;
  /** For messages: "main graph", or "If 'node' then_branch" (nested: joined by " > "). */
  label: string;
}

export type DefinitionKind = 'initializer' | 'constant' | 'input' | 'node';

export interface Definition {
  name: string;
  scope: Scope;
  kind: DefinitionKind;
  /** The value of an initializer or a Constant node. */
  tensor?: OnnxTensor | undefined;
  /** The producing node (Constant included) in its scope. */
  node?: OnnxNode | undefined;
  nodeIndex?: number | undefined;
  /** An initializer that is also listed in its graph's inputs. */
  alsoInput?: boolean | undefined;
  reads: Read[];
}

/** One read of a definition: a node input (slot ≥ 0) or a graph output (node undefined, slot -1). */
export interface Read {
  scope: Scope;
  node: OnnxNode | undefined;
  nodeIndex: number;
  slot: number;
}

const isDefaultDomain = (n: OnnxNode) => n.domain === '' || n.domain === 'ai.onnx';

/** The tensor a Constant node holds in its `value` attribute (the form exporters write). */
export function constantValue(n: OnnxNode): OnnxTensor | undefined {
  if (n.opType !== 'Constant' || !isDefaultDomain(n) || n.outputs.length !== 1) return undefined;
  return n.attributes.find((a) => a.name === 'value')?.t;
}

/** A node's subgraph attributes, with the attribute name and position in `graphs`. */
export function subgraphsOf(n: OnnxNode): { attribute: string; index: number | undefined; graph: OnnxGraph }[] {
  const out: { attribute: string; index: number | undefined; graph: OnnxGraph }[] = [];
  for (const a of n.attributes) {
    if (a.type === AttrType.graph && a.g) out.push({ attribute: a.name, index: undefined, graph: a.g });
    if (a.type === AttrType.graphs) a.graphs?.forEach((g, i) => out.push({ attribute: a.name, index: i, graph: g }));
  }
  return out;
}

export class ModelScopes {
  readonly scopes: Scope[] = [];
  readonly definitions: Definition[] = [];
  readonly #byScope = new Map<OnnxGraph, Map<string, Definition>>();
  readonly #scopeOf = new Map<OnnxGraph, Scope>();

  constructor(model: OnnxModel) {
    this.#walk(model.graph, undefined, 'main graph');
  }

  scopeOf(g: OnnxGraph): Scope {
    const s = this.#scopeOf.get(g);
    if (!s) throw new Error('graph is not part of this model');
    return s;
  }

  /** The definition a name read in `scope` resolves to (innermost first), if any. */
  resolve(scope: Scope, name: string): Definition | undefined {
    for (let s: Scope | undefined = scope; s; s = s.parent) {
      const d = this.#byScope.get(s.graph)?.get(name);
      if (d) return d;
    }
    return undefined;
  }

  /** Every name used anywhere (tensors and node names), for making new unique names. */
  allNames(): Set<string> {
    const names = new Set<string>();
    for (const s of this.scopes) {
      const g = s.graph;
      for (const t of g.initializers) names.add(t.name);
      for (const v of [...g.inputs, ...g.outputs, ...g.valueInfo]) names.add(v.name);
      for (const n of g.nodes) {
        if (n.name) names.add(n.name);
        for (const o of n.outputs) names.add(o);
        for (const i of n.inputs) names.add(i);
      }
    }
    return names;
  }

  #walk(g: OnnxGraph, parent: Scope | undefined, label: string): void {
    const scope: Scope = { graph: g, parent, depth: parent ? parent.depth + 1 : 0, label };
    this.scopes.push(scope);
    this.#scopeOf.set(g, scope);
    const local = new Map<string, Definition>();
    this.#byScope.set(g, local);
    const define = (d: Omit<Definition, 'reads' | 'scope'>) => {
      const def: Definition = { ...d, scope, reads: [] };
      local.set(d.name, def);
      this.definitions.push(def);
    };
    for (const v of g.inputs) if (v.name) define({ name: v.name, kind: 'input' });
    const inputs = new Set(g.inputs.map((v) => v.name));
    for (const t of g.initializers) define({ name: t.name, kind: 'initializer', tensor: t, alsoInput: inputs.has(t.name) });
    g.nodes.forEach((n, nodeIndex) => {
      const value = constantValue(n);
      for (const o of n.outputs) {
        if (o) define({ name: o, kind: value ? 'constant' : 'node', tensor: value, node: n, nodeIndex });
      }
    });
    g.nodes.forEach((n, nodeIndex) => {
      n.inputs.forEach((name, slot) => {
        if (name) this.resolve(scope, name)?.reads.push({ scope, node: n, nodeIndex, slot });
      });
    });
    for (const o of g.outputs) this.resolve(scope, o.name)?.reads.push({ scope, node: undefined, nodeIndex: -1, slot: -1 });
    g.nodes.forEach((n) => {
      for (const sub of subgraphsOf(n)) {
        const where = `${n.opType} '${n.name || n.outputs[0] || '?'}' ${sub.attribute}${sub.index === undefined ? '' : `[${sub.index}]`}`;
        this.#walk(sub.graph, scope, scope.parent ? `${label} > ${where}` : where);
      }
    });
  }
}

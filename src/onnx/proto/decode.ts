import type { KeyValue, OnnxAttribute, OnnxGraph, OnnxModel, OnnxNode, OnnxTensor, OnnxValueInfo, OpsetId, Span } from './model.js';
import { fail, Reader, WIRE_FIXED32, WIRE_LEN, WIRE_VARINT } from './wire.js';

// ModelProto → OnnxModel. Typed decoders go six messages deep per graph (model, graph, node,
// attribute, tensor, key/value); subgraphs (If/Loop/Scan bodies, attributes of type GRAPH or
// GRAPHS) are decoded too, at most `maxDepth` graphs deep, so their weights can be found.
// Types are kept encoded. Every node, attribute, initializer and value_info keeps its
// encoded bytes for a byte-identical write-back.

export interface DecodeLimits {
  /** Most nodes + initializers + value_info entries over all graphs (each costs an object). */
  maxItems: number;
  /** Most nested subgraph levels (the main graph is level 0); 32 when not given. */
  maxDepth?: number | undefined;
}

export const DEFAULT_DECODE_LIMITS: DecodeLimits = { maxItems: 2_000_000, maxDepth: 32 };

/** What one decode shares across its graphs: the item budget. */
interface GraphContext {
  limits: DecodeLimits;
  items: number;
}

function keyValue(r: Reader): KeyValue {
  const kv: KeyValue = { key: '', value: '' };
  while (!r.done) {
    const [f, w] = r.tag();
    if (f === 1 && w === WIRE_LEN) kv.key = r.string();
    else if (f === 2 && w === WIRE_LEN) kv.value = r.string();
    else r.skip(w, f);
  }
  return kv;
}

export function decodeTensor(src: Uint8Array, path: string): OnnxTensor {
  const r = new Reader(src, path);
  const t: OnnxTensor = { name: '', dims: [], dataType: 0, dataLocation: 0, externalData: [], src };
  while (!r.done) {
    const [f, w] = r.tag();
    switch (f) {
      case 1:
        r.repeatedInt64(w, f, 'dims', t.dims);
        break;
      case 2:
        r.expect(w, WIRE_VARINT, f, 'data_type');
        t.dataType = r.int32();
        break;
      case 3:
        t.segmented = true;
        r.skip(w, f);
        break;
      case 4: {
        const start = r.pos;
        if (w === WIRE_FIXED32) {
          r.fixed32();
          (t.floatData ??= []).push(src.subarray(start, r.pos));
        } else {
          r.expect(w, WIRE_LEN, f, 'float_data');
          const packed = r.bytes();
          if (packed.length % 4 !== 0) fail(`${path}.float_data holds ${packed.length} bytes, not a multiple of 4`);
          (t.floatData ??= []).push(packed);
        }
        break;
      }
      case 8:
        r.expect(w, WIRE_LEN, f, 'name');
        t.name = r.string();
        break;
      case 9:
        r.expect(w, WIRE_LEN, f, 'raw_data');
        t.rawData = r.bytes();
        break;
      case 13:
        r.expect(w, WIRE_LEN, f, 'external_data');
        t.externalData.push(keyValue(sub(r, `${path}.external_data`)));
        break;
      case 14:
        r.expect(w, WIRE_VARINT, f, 'data_location');
        t.dataLocation = r.int32();
        break;
      case 5:
      case 6:
      case 7:
      case 10:
      case 11:
        t.hasOtherData = true;
        r.skip(w, f);
        break;
      default:
        r.skip(w, f);
    }
  }
  return t;
}

/** A reader over the next length-delimited payload. */
function sub(r: Reader, path: string): Reader {
  const bytes = r.bytes();
  return new Reader(bytes, path);
}

function decodeAttribute(src: Uint8Array, path: string, ctx: GraphContext, depth: number): OnnxAttribute {
  const r = new Reader(src, path);
  const subgraph = (bytes: Uint8Array, at: string): OnnxGraph => {
    const maxDepth = ctx.limits.maxDepth ?? 32;
    if (depth + 1 > maxDepth) fail(`${at}: subgraphs nest more than ${maxDepth} levels deep`);
    return decodeGraph(bytes, ctx, at, depth + 1);
  };
  const a: OnnxAttribute = { name: '', type: 0, src };
  while (!r.done) {
    const [f, w] = r.tag();
    switch (f) {
      case 1:
        r.expect(w, WIRE_LEN, f, 'name');
        a.name = r.string();
        break;
      case 20:
        r.expect(w, WIRE_VARINT, f, 'type');
        a.type = r.int32();
        break;
      case 2:
        r.expect(w, WIRE_FIXED32, f, 'f');
        a.f = r.float();
        break;
      case 3:
        r.expect(w, WIRE_VARINT, f, 'i');
        a.i = r.int64();
        break;
      case 4:
        r.expect(w, WIRE_LEN, f, 's');
        a.s = r.bytes();
        break;
      case 5:
        r.expect(w, WIRE_LEN, f, 't');
        a.t = decodeTensor(r.bytes(), `${path}.t`);
        break;
      case 7:
        if (w === WIRE_FIXED32) (a.floats ??= []).push(r.float());
        else {
          r.expect(w, WIRE_LEN, f, 'floats');
          const p = sub(r, `${path}.floats`);
          while (!p.done) (a.floats ??= []).push(p.float());
        }
        break;
      case 8:
        if (w === WIRE_VARINT) (a.ints ??= []).push(r.int64());
        else {
          r.expect(w, WIRE_LEN, f, 'ints');
          const p = sub(r, `${path}.ints`);
          while (!p.done) (a.ints ??= []).push(p.int64());
        }
        break;
      case 6:
        r.expect(w, WIRE_LEN, f, 'g');
        a.g = subgraph(r.bytes(), `${path}.g`);
        break;
      case 11:
        r.expect(w, WIRE_LEN, f, 'graphs');
        (a.graphs ??= []).push(subgraph(r.bytes(), `${path}.graphs[${a.graphs?.length ?? 0}]`));
        break;
      default:
        r.skip(w, f);
    }
  }
  return a;
}

function decodeNode(src: Uint8Array, path: string, ctx: GraphContext, depth: number): OnnxNode {
  const r = new Reader(src, path);
  const n: OnnxNode = { name: '', opType: '', domain: '', inputs: [], outputs: [], attributes: [], src };
  while (!r.done) {
    const [f, w] = r.tag();
    switch (f) {
      case 1:
        r.expect(w, WIRE_LEN, f, 'input');
        n.inputs.push(r.string());
        break;
      case 2:
        r.expect(w, WIRE_LEN, f, 'output');
        n.outputs.push(r.string());
        break;
      case 3:
        r.expect(w, WIRE_LEN, f, 'name');
        n.name = r.string();
        break;
      case 4:
        r.expect(w, WIRE_LEN, f, 'op_type');
        n.opType = r.string();
        break;
      case 7:
        r.expect(w, WIRE_LEN, f, 'domain');
        n.domain = r.string();
        break;
      case 5:
        r.expect(w, WIRE_LEN, f, 'attribute');
        n.attributes.push(decodeAttribute(r.bytes(), `${path}.attribute[${n.attributes.length}]`, ctx, depth));
        break;
      default:
        r.skip(w, f);
    }
  }
  if (n.opType === '') fail(`${path} has no op_type`);
  return n;
}

function decodeValueInfo(src: Uint8Array, path: string): OnnxValueInfo {
  const r = new Reader(src, path);
  let name = '';
  while (!r.done) {
    const [f, w] = r.tag();
    if (f === 1) {
      r.expect(w, WIRE_LEN, f, 'name');
      name = r.string();
    } else r.skip(w, f);
  }
  return { name, src };
}

/** SparseTensorProto → the name of its values tensor (what nodes refer to). */
function sparseName(src: Uint8Array, path: string): string {
  const r = new Reader(src, path);
  let name = '';
  while (!r.done) {
    const [f, w] = r.tag();
    if (f === 1 && w === WIRE_LEN) name = decodeTensor(r.bytes(), `${path}.values`).name;
    else r.skip(w, f);
  }
  return name;
}

function decodeGraph(src: Uint8Array, ctx: GraphContext, path: string, depth: number): OnnxGraph {
  const r = new Reader(src, path);
  const g: OnnxGraph = { name: '', nodes: [], initializers: [], sparseInitializerNames: [], inputs: [], outputs: [], valueInfo: [], other: [] };
  const count = () => {
    if (++ctx.items > ctx.limits.maxItems) fail(`graph has more than ${ctx.limits.maxItems} nodes, initializers and value_info entries`);
  };
  while (!r.done) {
    const start = r.pos;
    const [f, w] = r.tag();
    switch (f) {
      case 1:
        r.expect(w, WIRE_LEN, f, 'node');
        count();
        g.nodes.push(decodeNode(r.bytes(), `${path}.node[${g.nodes.length}]`, ctx, depth));
        break;
      case 2:
        r.expect(w, WIRE_LEN, f, 'name');
        g.name = r.string();
        break;
      case 5:
        r.expect(w, WIRE_LEN, f, 'initializer');
        count();
        g.initializers.push(decodeTensor(r.bytes(), `${path}.initializer[${g.initializers.length}]`));
        break;
      case 11:
      case 12:
      case 13: {
        r.expect(w, WIRE_LEN, f, 'value_info');
        count();
        const list = f === 11 ? g.inputs : f === 12 ? g.outputs : g.valueInfo;
        list.push(decodeValueInfo(r.bytes(), `${path}.${f === 11 ? 'input' : f === 12 ? 'output' : 'value_info'}[${list.length}]`));
        break;
      }
      case 15:
        r.expect(w, WIRE_LEN, f, 'sparse_initializer');
        count();
        g.sparseInitializerNames.push(sparseName(r.bytes(), `${path}.sparse_initializer`));
        g.other.push({ field: f, bytes: src.subarray(start, r.pos) });
        break;
      default:
        r.skip(w, f);
        g.other.push({ field: f, bytes: src.subarray(start, r.pos) });
    }
  }
  return g;
}

export function decodeOpset(src: Uint8Array): OpsetId {
  const r = new Reader(src, 'ModelProto.opset_import');
  const o: OpsetId = { domain: '', version: 0 };
  while (!r.done) {
    const [f, w] = r.tag();
    if (f === 1 && w === WIRE_LEN) o.domain = r.string();
    else if (f === 2 && w === WIRE_VARINT) o.version = r.int64Number('version');
    else r.skip(w, f);
  }
  return o;
}

/** Decodes an ONNX model; views into buf are kept, so buf must outlive the model. */
export function decodeModel(buf: Uint8Array, limits: DecodeLimits = DEFAULT_DECODE_LIMITS): OnnxModel {
  if (buf.length === 0) fail('model is empty (0 bytes)');
  const r = new Reader(buf, 'ModelProto');
  let irVersion: number | undefined;
  const graphs: Uint8Array[] = [];
  const opsetImports: OpsetId[] = [];
  const other: Span[] = [];
  while (!r.done) {
    const start = r.pos;
    const [f, w] = r.tag();
    if (f === 1) {
      r.expect(w, WIRE_VARINT, f, 'ir_version');
      irVersion = r.int64Number('ir_version');
    } else if (f === 7) {
      r.expect(w, WIRE_LEN, f, 'graph');
      graphs.push(r.bytes());
    } else if (f === 8) {
      r.expect(w, WIRE_LEN, f, 'opset_import');
      opsetImports.push(decodeOpset(r.bytes()));
    } else {
      r.skip(w, f);
      other.push({ field: f, bytes: buf.subarray(start, r.pos) });
    }
  }
  if (graphs.length === 0) fail('is not a model: ModelProto.graph (field 7) is missing');
  // Protobuf merges a message field that occurs twice: the same as one concatenated payload.
  const ctx: GraphContext = { limits, items: 0 };
  const graph = decodeGraph(graphs.length === 1 ? graphs[0]! : Buffer.concat(graphs), ctx, 'ModelProto.graph', 0);
  if (irVersion === undefined || irVersion < 1) fail('is not a model: ModelProto.ir_version (field 1) is missing or not positive');
  if (opsetImports.length === 0) fail('model imports no opset (ModelProto.opset_import is empty)');
  return { irVersion, opsetImports, graph, other };
}

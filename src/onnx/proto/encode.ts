import type { OnnxAttribute, OnnxGraph, OnnxModel, OnnxNode, OnnxTensor, OnnxValueInfo } from './model.js';
import { Parts, WIRE_LEN } from './wire.js';

// OnnxModel → protobuf. Anything that still has its `src` is framed as it was read (a view,
// not a copy); only new or changed messages are encoded from their fields. The result is a
// list of parts so a model with big initializers is assembled without one giant copy.

export function encodeTensor(t: OnnxTensor): Parts {
  const p = new Parts();
  if (t.src) return p.raw(t.src);
  p.packedInt64(1, t.dims);
  if (t.dataType) p.uintField(2, t.dataType);
  if (t.floatData) {
    const body = new Parts();
    for (const run of t.floatData) body.raw(run);
    p.messageField(4, body);
  }
  if (t.name) p.stringField(8, t.name);
  if (t.rawData) p.bytesField(9, t.rawData);
  for (const kv of t.externalData) {
    const entry = new Parts().stringField(1, kv.key).stringField(2, kv.value);
    p.messageField(13, entry);
  }
  if (t.dataLocation) p.uintField(14, t.dataLocation);
  return p;
}

function encodeAttribute(a: OnnxAttribute): Parts {
  const p = new Parts();
  if (a.src) return p.raw(a.src);
  p.stringField(1, a.name);
  if (a.f !== undefined) p.float(2, a.f);
  if (a.i !== undefined) p.int64Field(3, a.i);
  if (a.s !== undefined) p.bytesField(4, a.s);
  if (a.t !== undefined) p.messageField(5, encodeTensor(a.t));
  if (a.floats !== undefined) {
    const body = new Parts();
    for (const v of a.floats) {
      const view = new DataView(new ArrayBuffer(4));
      view.setFloat32(0, v, true);
      body.fixed32(view.getUint32(0, true));
    }
    p.messageField(7, body);
  }
  if (a.ints !== undefined) {
    const body = new Parts();
    for (const v of a.ints) body.int64(v);
    p.messageField(8, body);
  }
  if (a.g !== undefined) p.messageField(6, encodeGraph(a.g));
  for (const g of a.graphs ?? []) p.messageField(11, encodeGraph(g));
  p.uintField(20, a.type);
  return p;
}

export function encodeNode(n: OnnxNode): Parts {
  const p = new Parts();
  if (n.src) return p.raw(n.src);
  for (const i of n.inputs) p.stringField(1, i);
  for (const o of n.outputs) p.stringField(2, o);
  if (n.name) p.stringField(3, n.name);
  p.stringField(4, n.opType);
  for (const a of n.attributes) p.messageField(5, encodeAttribute(a));
  if (n.domain) p.stringField(7, n.domain);
  return p;
}

function valueInfo(p: Parts, field: number, v: OnnxValueInfo): void {
  p.tag(field, WIRE_LEN).varint(v.src.length).raw(v.src);
}

export function encodeGraph(g: OnnxGraph, tensor: (t: OnnxTensor) => Parts = encodeTensor): Parts {
  const p = new Parts();
  for (const n of g.nodes) p.messageField(1, encodeNode(n));
  if (g.name) p.stringField(2, g.name);
  for (const t of g.initializers) p.messageField(5, tensor(t));
  for (const v of g.inputs) valueInfo(p, 11, v);
  for (const v of g.outputs) valueInfo(p, 12, v);
  for (const v of g.valueInfo) valueInfo(p, 13, v);
  for (const s of g.other) p.raw(s.bytes);
  return p;
}

/**
 * The whole model as parts. `tensor` lets the caller frame initializers differently (e.g.
 * moved to external data); by default they are written inline.
 */
export function encodeModel(m: OnnxModel, tensor?: (t: OnnxTensor) => Parts): Parts {
  const p = new Parts();
  p.uintField(1, m.irVersion);
  for (const o of m.opsetImports) {
    const body = new Parts();
    if (o.domain) body.stringField(1, o.domain);
    body.uintField(2, o.version);
    p.messageField(8, body);
  }
  p.messageField(7, encodeGraph(m.graph, tensor));
  for (const s of m.other) p.raw(s.bytes);
  return p;
}

export function encodeModelBytes(m: OnnxModel): Uint8Array {
  return encodeModel(m).concat();
}

import { AttrType, DataType, type OnnxAttribute, type OnnxGraph, type OnnxModel, type OnnxNode, type OnnxTensor, type OnnxValueInfo, type OpsetId } from '../proto/model.js';
import { Parts } from '../proto/wire.js';

// Constructors for new graph pieces: the rewrites use them, and tests build whole models
// with them (no model files are downloaded or committed).

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export function tensor(name: string, dataType: number, dims: readonly number[], raw: ArrayBufferView): OnnxTensor {
  return { name, dims: [...dims], dataType, rawData: bytesOf(raw), dataLocation: 0, externalData: [] };
}

export function floatTensor(name: string, dims: readonly number[], data: Float32Array): OnnxTensor {
  return tensor(name, DataType.float32, dims, data);
}

export function int64Tensor(name: string, dims: readonly number[], data: readonly number[]): OnnxTensor {
  return tensor(name, DataType.int64, dims, BigInt64Array.from(data.map((v) => BigInt(v))));
}

export const attrs = {
  int: (name: string, v: number): OnnxAttribute => ({ name, type: AttrType.int, i: BigInt(v) }),
  float: (name: string, v: number): OnnxAttribute => ({ name, type: AttrType.float, f: v }),
  ints: (name: string, v: readonly number[]): OnnxAttribute => ({ name, type: AttrType.ints, ints: v.map((x) => BigInt(x)) }),
  string: (name: string, v: string): OnnxAttribute => ({ name, type: AttrType.string, s: new TextEncoder().encode(v) }),
  tensor: (name: string, t: OnnxTensor): OnnxAttribute => ({ name, type: AttrType.tensor, t }),
};

export function node(
  opType: string,
  inputs: readonly string[],
  outputs: readonly string[],
  opts: { name?: string; domain?: string; attributes?: OnnxAttribute[] } = {},
): OnnxNode {
  return {
    name: opts.name ?? '',
    opType,
    domain: opts.domain ?? '',
    inputs: [...inputs],
    outputs: [...outputs],
    attributes: opts.attributes ?? [],
  };
}

/** A tensor-typed ValueInfoProto; a string dim is symbolic (dim_param), e.g. 'batch'. */
export function valueInfo(name: string, elemType: number, shape: readonly (number | string)[] | undefined): OnnxValueInfo {
  const tensorType = new Parts().uintField(1, elemType);
  if (shape) {
    const shapeProto = new Parts();
    for (const d of shape) {
      const dim = typeof d === 'number' ? new Parts().int64Field(1, d) : new Parts().stringField(2, d);
      shapeProto.messageField(1, dim);
    }
    tensorType.messageField(2, shapeProto);
  }
  const typeProto = new Parts().messageField(1, tensorType);
  const src = new Parts().stringField(1, name).messageField(2, typeProto).concat();
  return { name, src };
}

export function graph(parts: Partial<OnnxGraph> & Pick<OnnxGraph, 'nodes' | 'inputs' | 'outputs'>): OnnxGraph {
  return {
    name: 'graph',
    initializers: [],
    sparseInitializerNames: [],
    valueInfo: [],
    other: [],
    ...parts,
  };
}

export function model(g: OnnxGraph, opts: { opset?: number; irVersion?: number; extraOpsets?: OpsetId[] } = {}): OnnxModel {
  const opset = opts.opset ?? 17;
  return {
    irVersion: opts.irVersion ?? (opset >= 21 ? 10 : 8),
    opsetImports: [{ domain: '', version: opset }, ...(opts.extraOpsets ?? [])],
    graph: g,
    other: [],
  };
}

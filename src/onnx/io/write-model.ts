import { join } from 'node:path';
import { encodeModel, encodeTensor } from '../proto/encode.js';
import { inlined } from './external.js';
import { DATA_LOCATION_EXTERNAL, rawBytes, type OnnxModel, type OnnxTensor } from '../proto/model.js';
import { elementCount, externalRef, isExternal, type ExternalData } from '../proto/tensor-data.js';
import { Parts, WIRE_LEN } from '../proto/wire.js';
import { writePieces } from './files.js';

// The quantized model as bytes or files. It is written self-contained (every tensor inline)
// whenever protobuf can hold it; past 2 GiB the tensors move to one external data file
// beside the .onnx, and the pair is served as a zip.

/** Protobuf cannot hold a message of 2 GiB or more; onnxruntime refuses one from a buffer. */
export const PROTOBUF_LIMIT = 2 ** 31 - 1;
/** Tensors smaller than this stay inline even in an external-data model (as onnx's save does). */
export const EXTERNAL_THRESHOLD = 1024;
/** External data offsets are page-aligned, so onnxruntime can map them. */
export const DATA_ALIGN = 4096;

function tensorByteLength(t: OnnxTensor): number | undefined {
  if (isExternal(t)) return externalRef(t).length ?? rawBytes(t.dataType, elementCount(t));
  if (t.rawData) return t.rawData.length;
  return undefined;
}

/** Header fields of a tensor whose data is framed separately. */
function tensorHead(t: OnnxTensor): Parts {
  const p = new Parts().packedInt64(1, t.dims);
  if (t.dataType) p.uintField(2, t.dataType);
  if (t.name) p.stringField(8, t.name);
  return p;
}

/** Encodes tensors inline; data still in external files is read only when written. */
export function inlineTensor(external: ExternalData): (t: OnnxTensor) => Parts {
  return (t) => {
    if (!isExternal(t)) return encodeTensor(t);
    const ref = externalRef(t);
    const length = tensorByteLength(t)!;
    return tensorHead(t)
      .tag(9, WIRE_LEN)
      .varint(length)
      .lazy({ length, read: () => [external.read(ref.location, ref.offset, length)] });
  };
}

/** Constant nodes whose value is external get it inline too (rare, but legal). */
function inlineConstants(model: OnnxModel, external: ExternalData): OnnxModel {
  const hasExternal = (n: OnnxModel['graph']['nodes'][number]) => n.attributes.some((a) => a.t && isExternal(a.t));
  if (!model.graph.nodes.some(hasExternal)) return model;
  const nodes = model.graph.nodes.map((n) =>
    hasExternal(n)
      ? { ...n, src: undefined, attributes: n.attributes.map((a) => (a.t && isExternal(a.t) ? { ...a, src: undefined, t: inlined(a.t, external) } : a)) }
      : n,
  );
  return { ...model, graph: { ...model.graph, nodes } };
}

/** The self-contained encoding (check `.length` against PROTOBUF_LIMIT before using it). */
export function inlineModelParts(model: OnnxModel, external: ExternalData): Parts {
  return encodeModel(inlineConstants(model, external), inlineTensor(external));
}

export interface Artifact {
  /** File name as the user will see it (also the external data `location`). */
  name: string;
  path: string;
  size: number;
  crc: number;
}

function zeros(n: number): Uint8Array {
  return new Uint8Array(n);
}

/** Told each file's name and size before it is written (a job reserves the disk it takes; it may throw). */
export type ReserveFile = (name: string, bytes: number) => void;

/**
 * Writes the model into dir: one `<name>` when it fits protobuf, else `<name>` plus
 * `<name>.data` holding every tensor of EXTERNAL_THRESHOLD bytes or more.
 */
export function writeModelFiles(model: OnnxModel, external: ExternalData, dir: string, name: string, maxInline = PROTOBUF_LIMIT, reserve?: ReserveFile): Artifact[] {
  const inline = inlineModelParts(model, external);
  if (inline.length <= maxInline) {
    reserve?.(name, inline.length);
    return [{ name, path: join(dir, name), ...writePieces(join(dir, name), inline.pieces()) }];
  }

  const dataName = `${name}.data`;
  const data: (() => Iterable<Uint8Array>)[] = [];
  let offset = 0;
  const moved = new Map<OnnxTensor, OnnxTensor>();
  for (const t of model.graph.initializers) {
    const length = tensorByteLength(t);
    if (length === undefined || length < EXTERNAL_THRESHOLD) continue;
    const at = Math.ceil(offset / DATA_ALIGN) * DATA_ALIGN;
    const pad = at - offset;
    const source = t;
    data.push(() => [zeros(pad), ...(isExternal(source) ? [external.read(externalRef(source).location, externalRef(source).offset, length)] : [source.rawData!])]);
    moved.set(t, {
      name: t.name,
      dims: t.dims,
      dataType: t.dataType,
      dataLocation: DATA_LOCATION_EXTERNAL,
      externalData: [
        { key: 'location', value: dataName },
        { key: 'offset', value: String(at) },
        { key: 'length', value: String(length) },
      ],
    });
    offset = at + length;
  }
  const graph = { ...model.graph, initializers: model.graph.initializers.map((t) => moved.get(t) ?? t) };
  const proto = encodeModel(inlineConstants({ ...model, graph }, external));
  if (proto.length > PROTOBUF_LIMIT) throw new RangeError(`the model without its large tensors is still ${proto.length} bytes`);
  reserve?.(name, proto.length);
  const onnx = { name, path: join(dir, name), ...writePieces(join(dir, name), proto.pieces()) };
  const pieces = function* () {
    for (const d of data) yield* d();
  };
  reserve?.(dataName, offset);
  return [onnx, { name: dataName, path: join(dir, dataName), ...writePieces(join(dir, dataName), pieces()) }];
}

import { Errors } from '../../errors.js';
import { dataTypeName, rawBytes, type OnnxModel, type OnnxTensor } from '../proto/model.js';
import { elementCount, externalRef, isExternal, type ExternalData } from '../proto/tensor-data.js';

// External data: tensors whose bytes live in side files named by `location`. The files
// arrive with the model (multipart parts named by location, or files on disk for jobs).

/** Every initializer (and Constant value) of the main graph that lives in an external file. */
export function externalTensors(model: OnnxModel): OnnxTensor[] {
  const out = model.graph.initializers.filter(isExternal);
  for (const n of model.graph.nodes) for (const a of n.attributes) if (a.t && isExternal(a.t)) out.push(a.t);
  return out;
}

/** Each referenced file must be there and hold every range read from it: a 400 naming the culprit. */
export function checkExternalFiles(model: OnnxModel, sizes: ReadonlyMap<string, number>): void {
  for (const t of externalTensors(model)) {
    const ref = externalRef(t);
    const size = sizes.get(ref.location);
    if (size === undefined) {
      throw new Errors.Onnx(
        `initializer '${t.name}' lives in external data file '${ref.location}', which was not uploaded: send it as a multipart file part named '${ref.location}'`,
      );
    }
    const length = ref.length ?? size - ref.offset;
    if (ref.offset + length > size) {
      throw new Errors.Onnx(`initializer '${t.name}': bytes ${ref.offset}..${ref.offset + length} of '${ref.location}' are past its end (${size} bytes)`);
    }
  }
}

/** External files held in memory (a multipart upload). */
export function memoryExternalData(files: ReadonlyMap<string, Uint8Array>): ExternalData {
  return {
    read(location, offset, length) {
      const file = files.get(location);
      if (!file) throw new Errors.Onnx(`external data file '${location}' was not uploaded`);
      if (offset + length > file.length) throw new Errors.Onnx(`external data: bytes ${offset}..${offset + length} of '${location}' are past its end (${file.length} bytes)`);
      return file.subarray(offset, offset + length);
    },
  };
}

/** The same tensor with its bytes inline (raw_data), for a self-contained output model. */
export function inlined(t: OnnxTensor, external: ExternalData): OnnxTensor {
  const ref = externalRef(t);
  const length = ref.length ?? rawBytes(t.dataType, elementCount(t));
  if (length === undefined) throw new Errors.Onnx(`initializer '${t.name}': ${dataTypeName(t.dataType)} external data without a length cannot be inlined`);
  return { name: t.name, dims: t.dims, dataType: t.dataType, rawData: external.read(ref.location, ref.offset, length), dataLocation: 0, externalData: [] };
}

import { readNpy } from '../../codecs/npy.js';
import { assertFinite, decodeBase64, decodeJsonData, decodeRaw, type Tensor } from '../../core/tensor.js';
import { adoptArena, type WasmMemory } from '../../core/kernels/runtime.js';
import type { TaskLimits, TensorSource } from '../messages.js';

/**
 * A body's bytes in this thread, its arena (if any) registered here so the kernels read the
 * tensor in place. The view and the arena travel in one message, so the view arrives on the
 * arena's buffer; it is remade on it if an engine ever delivers them apart.
 */
function localBytes(src: { bytes: Uint8Array; arena?: WasmMemory | undefined }): Uint8Array {
  if (!src.arena) return src.bytes;
  const buf = adoptArena(src.arena);
  return src.bytes.buffer === buf ? src.bytes : new Uint8Array(buf, src.bytes.byteOffset, src.bytes.byteLength);
}

/** Any of the three input encodings → a float32 tensor in C order, checked for NaN/Inf. */
export function decodeInput(src: TensorSource, limits: TaskLimits, field = 'tensor'): Tensor {
  switch (src.kind) {
    case 'json':
      return decodeJsonData(src.data, src.shape, limits, field);
    case 'b64':
      return decodeBase64(src.b64, src.dtype, src.shape, limits, field);
    case 'raw':
      return decodeRaw(localBytes(src), src.dtype, src.shape, limits, field);
    case 'npy': {
      const { header, data } = readNpy(localBytes(src), limits);
      assertFinite(data, header.shape, field);
      return { data, shape: header.shape };
    }
  }
}

import { readNpy } from '../../core/codecs/npy.js';
import { assertFinite, decodeBase64, decodeJsonData, decodeRaw, type Tensor } from '../../core/tensor.js';
import type { TaskLimits, TensorSource } from '../messages.js';

/** Any of the three input encodings → a float32 tensor in C order, checked for NaN/Inf. */
export function decodeInput(src: TensorSource, limits: TaskLimits, field = 'tensor'): Tensor {
  switch (src.kind) {
    case 'json':
      return decodeJsonData(src.data, src.shape, limits, field);
    case 'b64':
      return decodeBase64(src.b64, src.dtype, src.shape, limits, field);
    case 'raw':
      return decodeRaw(src.bytes, src.dtype, src.shape, limits, field);
    case 'npy': {
      const { header, data } = readNpy(src.bytes, limits);
      assertFinite(data, header.shape, field);
      return { data, shape: header.shape };
    }
  }
}

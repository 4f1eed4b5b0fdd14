import { readNpy } from '../../codecs/npy.js';
import { decodeNpz } from '../../codecs/npz.js';
import { assertFinite, decodeBase64, decodeJsonData, decodeRaw, type Tensor } from '../../core/tensor.js';
import { adoptArena, type WasmMemory } from '../../core/kernels/runtime.js';
import { Errors } from '../../errors.js';
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

/** The members of an .npz body by name without `.npy` (numpy.savez(tensor=..., scale=...) names). */
export function npzMembers(src: { bytes: Uint8Array; arena?: WasmMemory | undefined }, allowed: readonly string[]): Map<string, Uint8Array> {
  const members = new Map<string, Uint8Array>();
  for (const e of decodeNpz(localBytes(src))) {
    const name = e.name.endsWith('.npy') ? e.name.slice(0, -4) : e.name;
    if (!allowed.includes(name)) {
      throw new Errors.Npy(`the .npz body has a member '${e.name.slice(0, 60)}'; it may hold only ${allowed.map((a) => (a.endsWith('.json') ? a : `${a}.npy`)).join(', ')}`);
    }
    members.set(name, e.data);
  }
  return members;
}

/** A float .npy as a tensor, checked for NaN/Inf unless `finite` is false. */
export function npyTensor(bytes: Uint8Array, limits: TaskLimits, field: string, finite: boolean): Tensor {
  const { header, data } = readNpy(bytes, limits);
  if (finite) assertFinite(data, header.shape, field);
  return { data, shape: header.shape };
}

/**
 * Any of the input encodings → a float32 tensor in C order, checked for NaN/Inf (unless
 * `finite` is false: given scales quantize them as QuantizeLinear does).
 */
export function decodeInput(src: TensorSource, limits: TaskLimits, field = 'tensor', finite = true): Tensor {
  switch (src.kind) {
    case 'json':
      return decodeJsonData(src.data, src.shape, limits, field);
    case 'b64':
      return decodeBase64(src.b64, src.dtype, src.shape, limits, field, finite);
    case 'raw':
      return decodeRaw(localBytes(src), src.dtype, src.shape, limits, field, finite);
    case 'npy':
      return npyTensor(localBytes(src), limits, field, finite);
    case 'npz': {
      const tensor = npzMembers(src, ['tensor', 'scale', 'zero_point']).get('tensor');
      if (!tensor) throw new Errors.Npy(`the .npz body has no member tensor.npy (numpy.savez(f, tensor=x, scale=..., zero_point=...))`);
      return npyTensor(tensor, limits, `${field} (tensor.npy)`, finite);
    }
  }
}

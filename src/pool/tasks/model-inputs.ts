import { readNpyNumeric } from '../../codecs/npy.js';
import { decodeNpz } from '../../codecs/npz.js';
import type { OnnxModel } from '../../onnx/proto/model.js';
import { Errors } from '../../errors.js';
import type { UserArray } from '../../onnx/runtime/inputs.js';
import type { TaskLimits } from '../messages.js';

/**
 * The `inputs` .npz: one array per model input, named like the input (`x.npy` or `x`):
 * float, integer or boolean (integer and boolean inputs need integral values, checked when
 * the feeds are made). Names that are not inputs of the model are a 400 here, before any
 * session starts.
 */
export function userInputs(npz: Uint8Array, model: OnnxModel, limits: TaskLimits): Map<string, UserArray> {
  const initializers = new Set(model.graph.initializers.map((t) => t.name));
  const inputs = model.graph.inputs.map((v) => v.name).filter((n) => !initializers.has(n));
  const out = new Map<string, UserArray>();
  for (const entry of decodeNpz(npz)) {
    const name = entry.name.endsWith('.npy') ? entry.name.slice(0, -4) : entry.name;
    if (!inputs.includes(name)) {
      throw new Errors.Option(`inputs: the .npz holds '${name}', which is not an input of the model (its inputs: ${inputs.join(', ')})`);
    }
    const { dtype, shape, data } = readNpyNumeric(entry.data, limits, `inputs: '${name}'`);
    out.set(name, { data, shape, dtype });
  }
  return out;
}

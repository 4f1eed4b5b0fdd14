import { readNpyNumeric } from '../../codecs/npy.js';
import { hessianOf, inputAxis, MAX_DATA_AWARE_FEATURES, quantizeDataAware, type DataAwareResult, type GptqTensorOptions, type TensorDataMethod } from '../../core/methods/data-aware.js';
import type { QuantSpec } from '../../core/quantize.js';
import type { Tensor } from '../../core/tensor.js';
import { Errors } from '../../errors.js';
import type { TaskLimits } from '../messages.js';
import { OrtGram } from '../../onnx/runtime/gram.js';
import { npyTensor } from './decode-input.js';

// method=imatrix|gptq on /v1/quantize and /v1/analyze: the .npz body's calibration
// statistics (activations [n, in] or xtx [in, in]) checked against the weight and the work
// bound, then the core. XᵀX of activations with ORT_GRAM_MIN_FEATURES or more features is summed
// on onnxruntime's GEMM (onnx/runtime/gram.ts: several times the WebAssembly kernel's rate,
// the same error bound); below that a session costs more than it saves. /v1/analyze sums it once,
// ahead of its rows (statisticsForAsync).

/** Input features from which /v1/quantize and /v1/analyze sum XᵀX on onnxruntime rather than the WebAssembly kernel. */
export const ORT_GRAM_MIN_FEATURES = 256;

export interface CalibrationMembers {
  activations?: Uint8Array | undefined;
  xtx?: Uint8Array | undefined;
}

export interface Statistics {
  h: Float64Array;
  statistics: 'activations' | 'xtx';
  activationRows: number | null;
}

/**
 * Multiply-adds: XᵀX (upper half) once, then per quantization that uses it (`repeats`: one on
 * /v1/quantize, one per row on /v1/analyze) GPTQ's factorization and updates and the three
 * output-error forms.
 */
function workOf(method: TensorDataMethod | 'rtn', n: number, k: number, outs: number, repeats: number): number {
  const gram = (n * k * k) / 2;
  const gptq = method === 'gptq' ? (2 * k ** 3) / 3 + (outs * k * k) / 2 : 0;
  return gram + repeats * (gptq + 3 * outs * k * k);
}

interface Checked {
  k: number;
  activations: Tensor | undefined;
  xtx: { data: Float64Array; shape: number[] } | undefined;
}

/** H = XᵀX over the weight's input features (the axis spec groups along), from the .npz members. */
export function statisticsFor(limits: TaskLimits, tensor: Tensor, members: CalibrationMembers, spec: QuantSpec, method: TensorDataMethod | 'rtn', repeats = 1): Statistics {
  const { k, activations, xtx } = checked(limits, tensor, members, spec, method, repeats);
  const { h, rows } = hessianOf({ activations, xtx }, k);
  return { h, statistics: activations ? 'activations' : 'xtx', activationRows: rows };
}

/** statisticsFor, with the activations' XᵀX on onnxruntime when they have ORT_GRAM_MIN_FEATURES features or more. */
export async function statisticsForAsync(limits: TaskLimits, tensor: Tensor, members: CalibrationMembers, spec: QuantSpec, method: TensorDataMethod | 'rtn', repeats = 1): Promise<Statistics> {
  const { k, activations, xtx } = checked(limits, tensor, members, spec, method, repeats);
  const s = activations?.shape;
  // Anything hessianOf would refuse goes to it, for its message.
  if (!activations || xtx || s?.length !== 2 || s[1] !== k || !(s[0]! >= 1) || k < ORT_GRAM_MIN_FEATURES || k > MAX_DATA_AWARE_FEATURES) {
    const { h, rows } = hessianOf({ activations, xtx }, k);
    return { h, statistics: activations ? 'activations' : 'xtx', activationRows: rows };
  }
  const gram = await OrtGram.create(k);
  const h = new Float64Array(k * k);
  try {
    await gram.add(activations.data, s[0]!);
    gram.addInto(h);
  } finally {
    await gram.release();
  }
  return { h, statistics: 'activations', activationRows: s[0]! };
}

/** The members decoded and the work checked against DATA_AWARE_MAX_MACS. */
function checked(limits: TaskLimits, tensor: Tensor, members: CalibrationMembers, spec: QuantSpec, method: TensorDataMethod | 'rtn', repeats: number): Checked {
  if (!members.activations && !members.xtx) {
    throw new Errors.Option(
      `method ${method} needs calibration statistics: send an .npz body (application/x-npz) with tensor and activations ([n, in]: calibration rows of the layer's input) or xtx ([in, in] = Σ xᵀx)`,
    );
  }
  const kAxis = inputAxis(tensor.shape, spec, method);
  const k = tensor.shape[kAxis]!;
  const outs = tensor.shape[1 - kAxis]!;
  const activations = members.activations ? npyTensor(members.activations, limits, 'activations (activations.npy)', true) : undefined;
  let xtx: { data: Float64Array; shape: number[] } | undefined;
  if (members.xtx) {
    const parsed = readNpyNumeric(members.xtx, limits, 'xtx (xtx.npy)');
    for (let i = 0; i < parsed.data.length; i++) {
      if (!Number.isFinite(parsed.data[i]!)) throw new Errors.NonFinite(`xtx (xtx.npy) holds a non-finite value at flat index ${i}`);
    }
    xtx = { data: parsed.data, shape: parsed.shape };
  }
  const n = activations?.shape.length === 2 ? activations.shape[0]! : 0;
  const macs = workOf(method, n, k, outs, repeats);
  const bound = limits.dataAwareMaxMacs;
  if (bound !== undefined && macs > bound) {
    throw new Errors.TooManyElements(
      `method ${method} on a [${tensor.shape.join(', ')}] weight with ${k} input features${n ? ` and ${n} activation rows` : ''}${repeats > 1 ? `, ${repeats} rows,` : ''} needs about ${Math.round(macs)} multiply-adds; the limit is DATA_AWARE_MAX_MACS=${bound}`,
    );
  }
  return { k, activations, xtx };
}

export async function runDataAwareTensor(limits: TaskLimits, tensor: Tensor, members: CalibrationMembers, spec: QuantSpec, method: TensorDataMethod, gptqOpts: GptqTensorOptions): Promise<DataAwareResult & Statistics> {
  const stats = await statisticsForAsync(limits, tensor, members, spec, method);
  return { ...quantizeDataAware(tensor.data, tensor.shape, spec, method, stats.h, gptqOpts), ...stats };
}

import { rint } from '../../core/round.js';
import { DataType } from '../proto/model.js';

// An activation's range → scale and zero point, ported from onnxruntime's
// quant_utils.compute_scale_zp (float64 arithmetic, numpy.round = half to even, the scale
// stored as float32), so our parameters are the ones its quantize_static would write.

export const ACTIVATION_TYPES = ['uint8', 'int8', 'int16'] as const;
export type ActivationType = (typeof ACTIVATION_TYPES)[number];

export const ACTIVATION_ELEM_TYPE: Record<ActivationType, number> = { uint8: DataType.uint8, int8: DataType.int8, int16: DataType.int16 };

export function activationRange(type: ActivationType, symmetric = false): { qMin: number; qMax: number } {
  switch (type) {
    case 'uint8':
      return symmetric ? { qMin: 0, qMax: 254 } : { qMin: 0, qMax: 255 };
    case 'int8':
      return symmetric ? { qMin: -127, qMax: 127 } : { qMin: -128, qMax: 127 };
    case 'int16':
      return symmetric ? { qMin: -32767, qMax: 32767 } : { qMin: -32768, qMax: 32767 };
  }
}

export interface ActivationParams {
  type: ActivationType;
  scale: number;
  zeroPoint: number;
}

const FLOAT32_TINY = 1.1754943508222875e-38;

export function computeScaleZp(rmin: number, rmax: number, type: ActivationType, symmetric = false): ActivationParams {
  const { qMin, qMax } = activationRange(type, symmetric);
  let lo = Math.min(rmin, 0);
  let hi = Math.max(rmax, 0);
  if (symmetric) {
    const a = Math.max(Math.abs(lo), Math.abs(hi));
    lo = -a;
    hi = a;
  }
  const scale = (hi - lo) / (qMax - qMin);
  if (!(scale >= FLOAT32_TINY) || !Number.isFinite(scale)) return { type, scale: 1, zeroPoint: 0 };
  const zeroPoint = symmetric ? rint((qMin + qMax) / 2) : rint(qMin - lo / scale);
  // + 0: rint(-0.4) is -0, and a zero point is an integer.
  return { type, scale: Math.fround(scale), zeroPoint: Math.min(qMax, Math.max(qMin, zeroPoint)) + 0 };
}

/** What QuantizeLinear then DequantizeLinear give for one value (ONNX-NOTES: x / scale, ties to even, saturate). */
export function fakeQuantize(x: number, p: ActivationParams): number {
  const { qMin, qMax } = activationRange(p.type);
  const q = Math.min(qMax, Math.max(qMin, rint(Math.fround(x / p.scale)) + p.zeroPoint));
  return Math.fround((q - p.zeroPoint) * p.scale);
}

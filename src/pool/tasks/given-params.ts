import { readNpyNumeric } from '../../codecs/npy.js';
import type { GivenArray } from '../../core/given.js';
import { decodeJsonData } from '../../core/tensor.js';
import { Errors } from '../../errors.js';
import type { GivenParamInput, TaskLimits } from '../messages.js';

// Given scales and zero points as they arrive (JSON numbers or nested arrays, query text,
// .npz members) → flat values with the shape they came in, for core/given.ts to check.

const NUMBER = /^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/;

export function givenArrayOf(value: GivenParamInput, field: string, limits: TaskLimits): GivenArray {
  if (typeof value === 'number') return { data: [value], shape: [] };
  if (typeof value === 'string') {
    const parts = value.split(',').map((p) => p.trim());
    if (parts.length > limits.maxElements) throw new Errors.TooManyElements(`${field} lists ${parts.length} values; the limit is MAX_ELEMENTS=${limits.maxElements}`);
    const data = parts.map((p, i) => {
      if (!NUMBER.test(p)) throw new Errors.Validation(`${field}: item ${i} of the comma-separated list is not a number: '${p.slice(0, 40)}'`);
      return Number(p);
    });
    return { data, shape: 'flat' };
  }
  // Nested arrays, as /v1/quantize returns them; the same checks as a tensor's data.
  const t = decodeJsonData(value, undefined, limits, field);
  return { data: t.data, shape: t.shape };
}

/** A scale or zero_point member of an .npz body (any numeric dtype). */
export function givenArrayOfNpy(bytes: Uint8Array, field: string, limits: TaskLimits): GivenArray {
  const { data, shape } = readNpyNumeric(bytes, limits, `${field}.npy`);
  return { data, shape };
}

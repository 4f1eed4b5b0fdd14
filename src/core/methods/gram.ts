import { gramKernel } from '../kernels/gram.js';
import { Errors } from '../../errors.js';

/**
 * acc (k×k, row-major, full symmetric) += xᵀx for x = n rows × k cols row-major. Float32
 * products summed in float32 over chunks of GRAM_ROWS rows, chunks added in float64
 * (kernels/gram.ts states the error bound). acc must be symmetric on entry: the lower
 * triangle is written from the upper one.
 */
export function accumulateGram(acc: Float64Array, x: Float32Array, n: number, k: number): void {
  if (!Number.isInteger(n) || n < 0 || !Number.isInteger(k) || k < 1) throw new Errors.TensorShape(`accumulateGram needs n ≥ 0 rows of k ≥ 1 columns, got n ${n}, k ${k}`);
  if (x.length < n * k) throw new Errors.TensorShape(`accumulateGram: x has ${x.length} values, n×k = ${n * k}`);
  if (acc.length !== k * k) throw new Errors.TensorShape(`accumulateGram: acc has ${acc.length} values, k×k = ${k * k}`);
  gramKernel(acc, x, n, k);
}

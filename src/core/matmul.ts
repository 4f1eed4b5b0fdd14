import { packedBytes } from './dtypes.js';
import { f32 } from './round.js';
import { quantize, type QuantParams, type QuantSpec } from './quantize.js';
import type { Scheme } from './calibrate.js';
import type { Tensor } from './tensor.js';
import { Errors } from '../errors.js';

export interface MatmulOptions {
  bits: number;
  scheme: Scheme;
  granularity: 'per_tensor' | 'per_channel';
  calibration: QuantSpec['calibration'];
  percentile: number;
}

export interface MatmulResult {
  shape: [number, number];
  result: Float32Array;
  reference: Float32Array;
  a: QuantParams;
  b: QuantParams;
  error: { max_error: number; mean_error: number; relative_error: number | null };
  memory: { float32_bytes: number; quantized_bytes: number; savings: number };
}

function quantizedBytes(p: QuantParams, n: number): number {
  const zp = p.scheme === 'asymmetric' ? packedBytes(p.dtype, p.scale.length) : 0;
  return packedBytes(p.dtype, n) + 4 * p.scale.length + zp;
}

/**
 * C = A @ B with both operands quantized: (qa - za)(qb - zb) summed exactly (integers in a
 * double stay exact below 2^53, far above K * 2^16), then rescaled by sa[m] * sb[n] in float32.
 * per_channel quantizes A by rows and B by columns, so each output keeps one scale pair.
 */
export function quantizedMatmul(a: Tensor, b: Tensor, opts: MatmulOptions): MatmulResult {
  if (a.shape.length !== 2 || b.shape.length !== 2) {
    throw new Errors.TensorShape(`a and b must be 2-D matrices; got a of shape [${a.shape.join(', ')}] and b of shape [${b.shape.join(', ')}]`);
  }
  const [M, K] = a.shape as [number, number];
  const [K2, N] = b.shape as [number, number];
  if (K !== K2) {
    throw new Errors.TensorShape(`inner dimensions differ: a is [${M}, ${K}] and b is [${K2}, ${N}]; a.shape[1] must equal b.shape[0]`);
  }
  const spec = (axis: number): QuantSpec => ({ ...opts, axis, groupSize: 1 });
  const qa = quantize(a.data, a.shape, spec(0));
  const qb = quantize(b.data, b.shape, spec(1));
  const perChannel = opts.granularity === 'per_channel';

  // Centre the integers once: rows of A and columns of B (B transposed for a contiguous dot).
  const ac = new Int32Array(M * K);
  for (let m = 0; m < M; m++) {
    const za = qa.params.zeroPoint[perChannel ? m : 0]!;
    for (let k = 0; k < K; k++) ac[m * K + k] = qa.q[m * K + k]! - za;
  }
  const bt = new Int32Array(N * K);
  for (let k = 0; k < K; k++) {
    for (let n = 0; n < N; n++) bt[n * K + k] = qb.q[k * N + n]! - qb.params.zeroPoint[perChannel ? n : 0]!;
  }

  const result = new Float32Array(M * N);
  const reference = new Float32Array(M * N);
  let maxErr = 0;
  let sumErr = 0;
  let diff2 = 0;
  let ref2 = 0;
  for (let m = 0; m < M; m++) {
    const sa = qa.params.scale[perChannel ? m : 0]!;
    for (let n = 0; n < N; n++) {
      let acc = 0;
      let exact = 0;
      for (let k = 0; k < K; k++) {
        acc += ac[m * K + k]! * bt[n * K + k]!;
        exact += a.data[m * K + k]! * b.data[k * N + n]!;
      }
      const c = f32(acc * f32(sa * qb.params.scale[perChannel ? n : 0]!));
      const r = f32(exact);
      result[m * N + n] = c;
      reference[m * N + n] = r;
      const e = Math.abs(r - c);
      if (e > maxErr) maxErr = e;
      sumErr += e;
      diff2 += e * e;
      ref2 += r * r;
    }
  }
  const floatBytes = 4 * (M * K + K * N);
  const qBytes = quantizedBytes(qa.params, M * K) + quantizedBytes(qb.params, K * N);
  return {
    shape: [M, N],
    result,
    reference,
    a: qa.params,
    b: qb.params,
    error: {
      max_error: maxErr,
      mean_error: sumErr / (M * N),
      relative_error: ref2 === 0 ? (diff2 === 0 ? 0 : null) : Math.sqrt(diff2 / ref2),
    },
    memory: { float32_bytes: floatBytes, quantized_bytes: qBytes, savings: 1 - qBytes / floatBytes },
  };
}

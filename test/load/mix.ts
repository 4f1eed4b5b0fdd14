import { encodeNpy } from '../../src/codecs/npy.js';
import { pack } from '../../src/core/pack.js';
import { quantize, type QuantSpec } from '../../src/core/quantize.js';

/** One kind of request in the mix, and how to judge its answer. */
export interface Kind {
  name: string;
  path: string;
  contentType: string;
  body: Buffer;
  /** Relative frequency in the mix. */
  weight: number;
  /** Why the answer is wrong, or undefined when it is right. */
  check: (status: number, body: string) => string | undefined;
}

const KiB = 1024;
const MiB = 1024 * KiB;

function tensor(bytes: number, seed: number): { data: Float32Array; shape: number[] } {
  const n = bytes / 4;
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.sin(seed + i * 0.618) * (1 + ((i * 7) % 13));
  return { data, shape: [n / 256, 256] };
}

/** What the core says the service must answer: shape, scales, zero points and packed integers. */
function expected(data: Float32Array, shape: number[], spec: QuantSpec) {
  const { params, q } = quantize(data, shape, spec);
  return { shape, scale: Array.from(params.scale), zeroPoint: Array.from(params.zeroPoint), packed: Buffer.from(pack(q, params.dtype)).toString('base64') };
}

function valid(name: string, bytes: number, seed: number, query: string, spec: QuantSpec, weight: number, raw = false): Kind {
  const { data, shape } = tensor(bytes, seed);
  const want = expected(data, shape, spec);
  const body = raw ? Buffer.from(data.buffer) : Buffer.from(encodeNpy(data, '<f4', shape));
  // The first answer is parsed and compared with the core; every later one must be the same
  // bytes, which is as strict and keeps the client from needing more CPU than the service.
  let verified: string | undefined;
  return {
    name,
    path: `/v1/quantize?${query}${raw ? `&shape=${shape.join(',')}` : ''}`,
    contentType: raw ? 'application/octet-stream' : 'application/x-npy',
    body,
    weight,
    check: (status, text) => {
      if (status !== 200) return `status ${status}: ${text.slice(0, 200)}`;
      if (verified !== undefined) return text === verified ? undefined : 'the answer differs from the one checked against the core';
      const got = JSON.parse(text) as { shape: number[]; scale: unknown; zero_point: unknown; quantized: { data: string } };
      if (JSON.stringify(got.shape) !== JSON.stringify(want.shape)) return `shape ${JSON.stringify(got.shape)}`;
      if (JSON.stringify([got.scale].flat(8)) !== JSON.stringify(want.scale)) return 'scales differ from the core';
      if (JSON.stringify([got.zero_point].flat(8)) !== JSON.stringify(want.zeroPoint)) return 'zero points differ from the core';
      if (got.quantized.data !== want.packed) return 'quantized integers differ from the core';
      verified = text;
      return undefined;
    },
  };
}

function malformed(name: string, path: string, contentType: string, body: Buffer | string, code: string, weight: number): Kind {
  return {
    name,
    path,
    contentType,
    body: Buffer.from(body),
    weight,
    check: (status, text) => {
      if (status !== 400) return `status ${status} (expected 400): ${text.slice(0, 200)}`;
      const got = JSON.parse(text) as { code: string };
      return got.code === code ? undefined : `code ${got.code} (expected ${code})`;
    },
  };
}

const base = { scheme: 'symmetric', granularity: 'per_tensor', axis: 0, groupSize: 128, calibration: 'minmax', percentile: 99.99 } as const;

/**
 * Valid quantizations of 256 KiB to `maxBytes` tensors (NPY and raw bodies, several
 * settings), each with its answer computed by the core, mixed with malformed requests that
 * must each be a 400.
 */
export function buildMix(maxBytes = 16 * MiB): Kind[] {
  const kinds: Kind[] = [
    valid('256KiB int8', 256 * KiB, 1, 'bits=8', { ...base, bits: 8 }, 4),
    valid('256KiB uint4 per channel raw', 256 * KiB, 2, 'bits=4&scheme=asymmetric&granularity=per_channel', { ...base, bits: 4, scheme: 'asymmetric', granularity: 'per_channel' }, 3, true),
    valid('1MiB int8 percentile', 1 * MiB, 3, 'bits=8&calibration=percentile', { ...base, bits: 8, calibration: 'percentile' }, 3),
    valid('4MiB int4 per group', 4 * MiB, 4, 'bits=4&granularity=per_group&group_size=64', { ...base, bits: 4, granularity: 'per_group', axis: -1, groupSize: 64 }, 2),
  ];
  if (maxBytes >= 16 * MiB) {
    kinds.push(valid('16MiB int2', 16 * MiB, 5, 'bits=2', { ...base, bits: 2 }, 1));
    kinds.push(valid('16MiB int4 per channel raw', 16 * MiB, 6, 'bits=4&granularity=per_channel', { ...base, bits: 4, granularity: 'per_channel' }, 1, true));
  }
  const npyNaN = Buffer.from(encodeNpy(new Float32Array([1, Number.NaN, 3, 4]), '<f4', [2, 2]));
  kinds.push(
    malformed('bad NPY magic', '/v1/quantize', 'application/x-npy', 'not an npy file', 'QUANT_ERR_NPY', 1),
    malformed('truncated NPY', '/v1/quantize', 'application/x-npy', npyNaN.subarray(0, npyNaN.length - 3), 'QUANT_ERR_NPY', 1),
    malformed('NaN in NPY', '/v1/quantize', 'application/x-npy', npyNaN, 'QUANT_ERR_NON_FINITE', 1),
    malformed('null element', '/v1/quantize', 'application/json', '{"tensor":{"data":[1,null,3]}}', 'QUANT_ERR_TENSOR_DATA', 1),
    malformed('bits 17', '/v1/quantize', 'application/json', '{"tensor":{"data":[1,2,3]},"bits":17}', 'QUANT_ERR_VALIDATION', 1),
    malformed('broken JSON', '/v1/quantize', 'application/json', '{"tensor":', 'QUANT_ERR_BAD_JSON', 1),
    malformed('raw body of the wrong size', '/v1/quantize?shape=1000', 'application/octet-stream', Buffer.alloc(3000), 'QUANT_ERR_TENSOR_SHAPE', 1),
  );
  return kinds;
}

import { npyHeaderBytes } from '../../src/codecs/npy.js';
import { mulberry32 } from '../../src/core/random.js';

/** Gaussian float32 values from a seeded generator (the same tensor on every run). */
export function gaussian(n: number, seed = 1): Float32Array {
  const next = mulberry32(seed);
  const u = () => next() / 4294967296;
  const x = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - u()));
    const t = 2 * Math.PI * u();
    x[i] = r * Math.cos(t);
    if (i + 1 < n) x[i + 1] = r * Math.sin(t);
  }
  return x;
}

/** A float32 .npy file of x with the given shape. */
export function npyBody(x: Float32Array, shape: number[]): Buffer {
  const header = npyHeaderBytes('<f4', shape);
  const body = Buffer.allocUnsafe(header.length + x.byteLength);
  body.set(header);
  body.set(new Uint8Array(x.buffer, x.byteOffset, x.byteLength), header.length);
  return body;
}

export const MiB = 2 ** 20;

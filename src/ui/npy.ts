// The original values of a dropped .npy, for the page's value distribution only (the
// service parses and checks the file itself; order does not matter for a histogram, so
// Fortran order needs no handling here).

import { halfToFloat } from '../core/float16.js';

export function npyValues(buf: ArrayBuffer): Float64Array {
  const bytes = new Uint8Array(buf);
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (bytes.length < 10 || magic.some((b, i) => bytes[i] !== b)) throw new Error('not an .npy file (no \\x93NUMPY magic)');
  const view = new DataView(buf);
  const major = bytes[6]!;
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder().decode(bytes.subarray(start, start + headerLen));
  const descr = /'descr'\s*:\s*'([<>|=])f([248])'/.exec(header);
  if (!descr) throw new Error(`the page plots float16/32/64 .npy only (header: ${header.trim().slice(0, 80)})`);
  const little = descr[1] !== '>';
  const size = Number(descr[2]);
  const offset = start + headerLen;
  const n = Math.floor((bytes.length - offset) / size);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const at = offset + i * size;
    out[i] = size === 4 ? view.getFloat32(at, little) : size === 8 ? view.getFloat64(at, little) : halfToFloat(view.getUint16(at, little));
  }
  return out;
}

/** Counts of both arrays over one set of equal-width bins spanning both (finite values). */
export function sharedHistogram(a: ArrayLike<number>, b: ArrayLike<number>, bins: number): { edges: number[]; a: number[]; b: number[] } {
  let lo = Infinity;
  let hi = -Infinity;
  for (const arr of [a, b]) {
    for (let i = 0; i < arr.length; i++) {
      const v = arr[i]!;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return { edges: [], a: [], b: [] };
  if (hi === lo) hi = lo + 1;
  const w = (hi - lo) / bins;
  const count = (arr: ArrayLike<number>) => {
    const c = new Array<number>(bins).fill(0);
    for (let i = 0; i < arr.length; i++) {
      const v = arr[i]!;
      if (!Number.isFinite(v)) continue;
      c[Math.min(bins - 1, Math.floor((v - lo) / w))]!++;
    }
    return c;
  };
  return { edges: Array.from({ length: bins + 1 }, (_, i) => lo + i * w), a: count(a), b: count(b) };
}

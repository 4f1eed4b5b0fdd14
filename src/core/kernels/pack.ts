import { CHUNK, kernelsFor, LAYOUT, stage } from './runtime.js';

// 2- and 4-bit packing with pack.wat, in whole blocks of 16 output bytes; the few values
// after the last whole block are packed here, as the reference does.

/** Values staged per call (one byte each): the whole 256 KiB staging area. */
const STAGE = CHUNK * 4;

/** Packs values (one per byte, two's complement) at `bits` per value into out, LSB first. */
export function packKernel(values: Int8Array | Uint8Array, bits: 2 | 4, out: Uint8Array): void {
  const src = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const k = kernelsFor(src);
  const perByte = 8 / bits;
  const perBlock = 16 * perByte;
  const whole = src.length - (src.length % perBlock);
  const fn = bits === 4 ? k.pack.pack4 : k.pack.pack2;
  const direct = out.buffer === k.buffer;
  for (let start = 0; start < whole; start += STAGE) {
    const count = Math.min(STAGE, whole - start);
    const dst = direct ? out.byteOffset + start / perByte : LAYOUT.q;
    fn(stage(k, src, start, count, LAYOUT.x), dst, count / perBlock);
    if (!direct) out.set(k.u8.subarray(LAYOUT.q, LAYOUT.q + count / perByte), start / perByte);
  }
  const mask = (1 << bits) - 1;
  out.fill(0, whole / perByte); // the tail is or-ed in; out may hold old bytes (a reused arena)
  for (let i = whole; i < src.length; i++) out[(i / perByte) | 0]! |= (src[i]! & mask) << ((i % perByte) * bits);
}

/** The inverse: n values out of packed bytes, sign-extended when `signed`. */
export function unpackKernel(bytes: Uint8Array, n: number, bits: 2 | 4, signed: boolean, out: Int8Array | Uint8Array): void {
  const k = kernelsFor(bytes);
  const perByte = 8 / bits;
  const perBlock = 16 * perByte;
  const dst = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  const whole = n - (n % perBlock);
  const fn = bits === 4 ? k.pack.unpack4 : k.pack.unpack2;
  for (let start = 0; start < whole; start += STAGE) {
    const count = Math.min(STAGE, whole - start);
    fn(stage(k, bytes, start / perByte, count / perByte, LAYOUT.x), LAYOUT.q, count / perBlock, signed ? 1 : 0);
    dst.set(k.u8.subarray(LAYOUT.q, LAYOUT.q + count), start);
  }
  const mask = (1 << bits) - 1;
  const signBit = 1 << (bits - 1);
  for (let i = whole; i < n; i++) {
    let v = (bytes[(i / perByte) | 0]! >> ((i % perByte) * bits)) & mask;
    if (signed && v & signBit) v -= 1 << bits;
    out[i] = v;
  }
}

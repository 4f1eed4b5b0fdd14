import { Errors } from '../../errors.js';

// Protobuf wire format, just what ONNX needs: varints, fixed32/64 and length-delimited
// fields. The reader never trusts a declared length: every read is checked against the
// bytes that are actually left, so a field that claims 4 GiB fails at once, before any
// allocation. There is no recursion here; nesting is bounded by the typed decoders.

export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_LEN = 2;
export const WIRE_FIXED32 = 5;

export function fail(message: string): never {
  throw new Errors.Onnx(`ONNX ${message}`);
}

export class Reader {
  readonly buf: Uint8Array;
  pos: number;
  readonly end: number;
  /** What is being read, for error messages ("ModelProto.graph.node[3]"). */
  readonly path: string;

  constructor(buf: Uint8Array, path: string, start = 0, end = buf.length) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
    this.path = path;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  /** An unsigned varint as a number; values past 2^53 are refused (no ONNX length or count gets there). */
  uint(): number {
    const b = this.buf;
    let lo = 0;
    let shift = 0;
    let i = this.pos;
    // The first four bytes fit a 28-bit integer, the common case, with plain bit operations.
    for (; shift < 28; shift += 7) {
      if (i >= this.end) this.truncated('varint');
      const byte = b[i++]!;
      lo |= (byte & 0x7f) << shift;
      if (byte < 0x80) {
        this.pos = i;
        return lo >>> 0;
      }
    }
    let value = lo >>> 0;
    let mul = 2 ** 28;
    for (let k = 4; k < 10; k++, mul *= 128) {
      if (i >= this.end) this.truncated('varint');
      const byte = b[i++]!;
      value += (byte & 0x7f) * mul;
      if (byte < 0x80) {
        this.pos = i;
        if (!Number.isSafeInteger(value)) fail(`${this.path}: varint ${value} at byte ${this.pos} is larger than 2^53`);
        return value;
      }
    }
    fail(`${this.path}: varint at byte ${this.pos} is longer than 10 bytes`);
  }

  /** A two's complement int64 varint as a bigint (exact, for values like INT64_MAX). */
  int64(): bigint {
    const b = this.buf;
    let v = 0n;
    let shift = 0n;
    for (let k = 0; k < 10; k++, shift += 7n) {
      if (this.pos >= this.end) this.truncated('varint');
      const byte = b[this.pos++]!;
      v |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return BigInt.asIntN(64, v);
    }
    fail(`${this.path}: varint at byte ${this.pos} is longer than 10 bytes`);
  }

  /** An int64 that must be a safe integer (dims, versions, attribute ints we act on). */
  int64Number(what: string): number {
    const v = this.int64();
    const n = Number(v);
    if (!Number.isSafeInteger(n)) fail(`${this.path}.${what}: ${v} is out of the range this service handles (±2^53)`);
    return n;
  }

  /** An int32 / enum varint (negative values arrive sign-extended to 10 bytes). */
  int32(): number {
    return Number(BigInt.asIntN(32, this.int64()));
  }

  fixed32(): number {
    if (this.pos + 4 > this.end) this.truncated('fixed32');
    const b = this.buf;
    const p = this.pos;
    this.pos += 4;
    return (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0;
  }

  float(): number {
    const bits = this.fixed32();
    const view = new DataView(new ArrayBuffer(4));
    view.setUint32(0, bits, true);
    return view.getFloat32(0, true);
  }

  /** The payload of a length-delimited field as a view into the input (never a copy). */
  bytes(): Uint8Array {
    const len = this.uint();
    const left = this.end - this.pos;
    if (len > left) fail(`${this.path}: a field declares ${len} bytes at byte ${this.pos} but only ${left} remain (truncated or corrupt)`);
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }

  string(): string {
    const bytes = this.bytes();
    try {
      return UTF8.decode(bytes);
    } catch {
      fail(`${this.path}: a string field is not valid UTF-8`);
    }
  }

  /** Reads a tag; returns [fieldNumber, wireType]. */
  tag(): [number, number] {
    const start = this.pos;
    const t = this.uint();
    const field = Math.floor(t / 8);
    const wire = t & 7;
    if (field === 0) fail(`${this.path}: field number 0 at byte ${start} (not a protobuf message)`);
    return [field, wire];
  }

  skip(wire: number, field: number): void {
    switch (wire) {
      case WIRE_VARINT:
        this.int64();
        return;
      case WIRE_FIXED64:
        if (this.pos + 8 > this.end) this.truncated('fixed64');
        this.pos += 8;
        return;
      case WIRE_LEN:
        this.bytes();
        return;
      case WIRE_FIXED32:
        if (this.pos + 4 > this.end) this.truncated('fixed32');
        this.pos += 4;
        return;
      default:
        // Groups (3, 4) are deprecated and unused by ONNX; 6 and 7 do not exist.
        fail(`${this.path}: field ${field} has wire type ${wire}, which ONNX never uses (not an ONNX model, or corrupt)`);
    }
  }

  expect(wire: number, want: number, field: number, name: string): void {
    if (wire !== want) fail(`${this.path}.${name} (field ${field}) has wire type ${wire}, expected ${want} (not an ONNX model, or corrupt)`);
  }

  /** Reads a packed (wire 2) or single (wire 0) varint element of a repeated int64 field. */
  repeatedInt64(wire: number, field: number, name: string, out: number[]): void {
    if (wire === WIRE_VARINT) {
      out.push(this.int64Number(name));
      return;
    }
    this.expect(wire, WIRE_LEN, field, name);
    const body = this.bytes();
    const sub = new Reader(body, `${this.path}.${name}`);
    while (!sub.done) out.push(sub.int64Number(name));
  }

  private truncated(what: string): never {
    fail(`${this.path}: truncated ${what} at byte ${this.pos}`);
  }
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });
const ENC = new TextEncoder();

// ---------------------------------------------------------------------------------------
// Writing: a message is a list of parts (small new buffers and views of the input) plus
// its total length, so big unchanged tensors are framed, never copied, until the very end.

/** Bytes produced only when written out (tensor data still in an external file). */
export interface LazyChunk {
  readonly length: number;
  /** The bytes, in pieces that together are `length` long. */
  read(): Iterable<Uint8Array>;
}

export type Chunk = Uint8Array | LazyChunk;

export function isLazy(c: Chunk): c is LazyChunk {
  return !(c instanceof Uint8Array);
}

export class Parts {
  readonly list: Chunk[] = [];
  length = 0;
  #scratch: number[] = [];

  #flush(): void {
    if (this.#scratch.length === 0) return;
    this.list.push(Uint8Array.from(this.#scratch));
    this.#scratch = [];
  }

  #byte(b: number): void {
    this.#scratch.push(b);
    this.length++;
    if (this.#scratch.length >= 4096) this.#flush();
  }

  /** Appends bytes as they are (a view: the caller must not change them afterwards). */
  raw(bytes: Uint8Array): this {
    if (bytes.length === 0) return this;
    if (bytes.length < 64) {
      for (let i = 0; i < bytes.length; i++) this.#byte(bytes[i]!);
      return this;
    }
    this.#flush();
    this.list.push(bytes);
    this.length += bytes.length;
    return this;
  }

  lazy(chunk: LazyChunk): this {
    this.#flush();
    this.list.push(chunk);
    this.length += chunk.length;
    return this;
  }

  varint(v: number): this {
    if (!Number.isSafeInteger(v)) throw new RangeError(`varint ${v} is not a safe integer`);
    if (v < 0) return this.int64(BigInt(v));
    while (v >= 0x80) {
      this.#byte((v % 128) | 0x80);
      v = Math.floor(v / 128);
    }
    this.#byte(v);
    return this;
  }

  int64(v: bigint): this {
    let u = BigInt.asUintN(64, v);
    while (u >= 0x80n) {
      this.#byte(Number(u & 0x7fn) | 0x80);
      u >>= 7n;
    }
    this.#byte(Number(u));
    return this;
  }

  tag(field: number, wire: number): this {
    return this.varint(field * 8 + wire);
  }

  fixed32(bits: number): this {
    this.#byte(bits & 0xff);
    this.#byte((bits >>> 8) & 0xff);
    this.#byte((bits >>> 16) & 0xff);
    this.#byte((bits >>> 24) & 0xff);
    return this;
  }

  float(field: number, v: number): this {
    const view = new DataView(new ArrayBuffer(4));
    view.setFloat32(0, v, true);
    return this.tag(field, WIRE_FIXED32).fixed32(view.getUint32(0, true));
  }

  uintField(field: number, v: number): this {
    return this.tag(field, WIRE_VARINT).varint(v);
  }

  int64Field(field: number, v: number | bigint): this {
    return this.tag(field, WIRE_VARINT).int64(BigInt(v));
  }

  bytesField(field: number, bytes: Uint8Array): this {
    return this.tag(field, WIRE_LEN).varint(bytes.length).raw(bytes);
  }

  stringField(field: number, s: string): this {
    return this.bytesField(field, ENC.encode(s));
  }

  messageField(field: number, msg: Parts): this {
    this.tag(field, WIRE_LEN).varint(msg.length);
    msg.#flush();
    for (const part of msg.list) {
      if (isLazy(part)) this.lazy(part);
      else this.raw(part);
    }
    return this;
  }

  /** Packed repeated int64 (proto3's default encoding for repeated scalars). */
  packedInt64(field: number, values: readonly number[]): this {
    if (values.length === 0) return this;
    const body = new Parts();
    for (const v of values) body.int64(BigInt(v));
    return this.messageField(field, body);
  }

  /** The parts, ready to write out one after another. */
  finish(): Chunk[] {
    this.#flush();
    return this.list;
  }

  /** Every byte in order, lazy chunks read as they come. */
  *pieces(): Iterable<Uint8Array> {
    for (const part of this.finish()) {
      if (isLazy(part)) yield* part.read();
      else yield part;
    }
  }

  /** One contiguous buffer (only for outputs under the 2 GiB protobuf limit). */
  concat(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const piece of this.pieces()) {
      out.set(piece, at);
      at += piece.length;
    }
    if (at !== this.length) throw new Error(`encoder produced ${at} bytes, planned ${this.length}`);
    return out;
  }
}

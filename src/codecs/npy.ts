import { Errors } from '../errors.js';
import { halfToFloat } from '../core/float16.js';

// The .npy format (numpy/lib/format.py): magic "\x93NUMPY", major and minor version
// bytes, a little-endian header length (u16 in 1.0, u32 in 2.0/3.0), then a Python dict
// literal padded with spaces and '\n' to a multiple of 64 bytes, then the raw data.

export type NpyFloatDescr = 'float16' | 'float32' | 'float64';
/** The dtypes readNpyArray takes (onnxruntime's numeric tensor types), named as onnxruntime names them. */
export type NpyNumericDescr = NpyFloatDescr | 'int8' | 'int16' | 'int32' | 'int64' | 'uint8' | 'uint16' | 'uint32' | 'uint64' | 'bool';

export interface NpyHeader {
  dtype: NpyFloatDescr;
  littleEndian: boolean;
  fortranOrder: boolean;
  shape: number[];
  /** Byte offset of the data in the file. */
  dataOffset: number;
  version: 1 | 2 | 3;
}

type Limits = { maxElements: number; maxDims: number };

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
const ARRAY_ALIGN = 64;
// numpy leaves room for the growth axis to reach 21 digits so the header can be
// rewritten in place when appending; byte-exact output has to do the same.
const GROWTH_AXIS_MAX_DIGITS = 21;
// numpy's own default max_header_size: a float array header is far smaller, and the
// literal parser below should never be fed megabytes.
const MAX_HEADER_BYTES = 10000;
const MAX_NESTING = 16;
const ACCEPTED = 'only float16, float32 and float64 are accepted';
const ITEM_BYTES: Record<NpyNumericDescr, number> = {
  float16: 2, float32: 4, float64: 8, int8: 1, int16: 2, int32: 4, int64: 8, uint8: 1, uint16: 2, uint32: 4, uint64: 8, bool: 1,
};
const ACCEPTED_NUMERIC = 'only bool, int8/16/32/64, uint8/16/32/64 and float16/32/64 are accepted';
const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// ---------------------------------------------------------------------------------------
// A parser for the subset of Python literals ast.literal_eval would accept in a header.

type PyValue =
  | { t: 'str'; v: string }
  | { t: 'int'; v: number; exact: bigint }
  | { t: 'float'; v: number }
  | { t: 'bool'; v: boolean }
  | { t: 'None' }
  | { t: 'tuple' | 'list'; items: PyValue[] }
  | { t: 'dict'; entries: Map<string, PyValue> };

const NUMBER = /[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?L?/y;
const NAME = /[A-Za-z_]\w*/y;

/** Untrusted text made safe and short enough to quote in an error message. */
function show(s: string, max = 40): string {
  const clean = s.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}...` : clean;
}

class LiteralParser {
  private pos = 0;
  constructor(private readonly s: string) {}

  parse(): PyValue {
    const value = this.value(0);
    this.skipSpace();
    if (this.pos < this.s.length) this.fail(`unexpected '${show(this.s[this.pos]!)}' after the dict`);
    return value;
  }

  private fail(what: string): never {
    throw new Errors.Npy(`NPY header is not a valid Python literal: ${what} at character ${this.pos}`);
  }

  private skipSpace(): void {
    while (this.pos < this.s.length && ' \t\r\n'.includes(this.s[this.pos]!)) this.pos++;
  }

  private value(depth: number): PyValue {
    if (depth > MAX_NESTING) this.fail(`nesting deeper than ${MAX_NESTING} levels`);
    this.skipSpace();
    const c = this.s[this.pos];
    if (c === undefined) this.fail('unexpected end of header');
    if (c === '{') return this.dict(depth);
    if (c === '(' || c === '[') return this.sequence(depth);
    if (c === "'" || c === '"') return { t: 'str', v: this.string(c) };
    NUMBER.lastIndex = this.pos;
    const num = NUMBER.exec(this.s);
    if (num) {
      this.pos += num[0].length;
      const text = num[0].replace(/L$/, ''); // Python 2 long literals, as numpy's _filter_header allows
      return /^[-+]?\d+$/.test(text) ? { t: 'int', v: Number(text), exact: BigInt(text) } : { t: 'float', v: Number(text) };
    }
    NAME.lastIndex = this.pos;
    const name = NAME.exec(this.s)?.[0];
    if (name === 'True' || name === 'False') {
      this.pos += name.length;
      return { t: 'bool', v: name === 'True' };
    }
    if (name === 'None') {
      this.pos += name.length;
      return { t: 'None' };
    }
    if (name !== undefined) this.fail(`unexpected name '${show(name)}'`);
    this.fail(`unexpected character '${show(c)}'`);
  }

  private string(quote: string): string {
    let out = '';
    for (this.pos++; ; this.pos++) {
      const c = this.s[this.pos];
      if (c === undefined || c === '\n') this.fail('unterminated string');
      if (c === quote) break;
      if (c === '\\') {
        const next = this.s[++this.pos];
        if (next === undefined) this.fail('unterminated string');
        out += next;
      } else {
        out += c;
      }
    }
    this.pos++;
    return out;
  }

  private sequence(depth: number): PyValue {
    const open = this.s[this.pos++];
    const close = open === '(' ? ')' : ']';
    const items: PyValue[] = [];
    let sawComma = false;
    for (;;) {
      this.skipSpace();
      if (this.s[this.pos] === close) break;
      items.push(this.value(depth + 1));
      this.skipSpace();
      if (this.s[this.pos] === ',') {
        this.pos++;
        sawComma = true;
      } else if (this.s[this.pos] !== close) {
        this.fail(`expected ',' or '${close}'`);
      }
    }
    this.pos++;
    // "(3)" is the int 3, not a tuple: numpy then rejects it as a shape, and so do we.
    if (open === '(' && items.length === 1 && !sawComma) return items[0]!;
    return { t: open === '(' ? 'tuple' : 'list', items };
  }

  private dict(depth: number): PyValue {
    this.pos++;
    const entries = new Map<string, PyValue>();
    for (;;) {
      this.skipSpace();
      if (this.s[this.pos] === '}') break;
      const key = this.value(depth + 1);
      if (key.t !== 'str') this.fail(`dict keys must be strings, got ${describe(key)}`);
      this.skipSpace();
      if (this.s[this.pos] !== ':') this.fail("expected ':'");
      this.pos++;
      entries.set(key.v, this.value(depth + 1));
      this.skipSpace();
      if (this.s[this.pos] === ',') this.pos++;
      else if (this.s[this.pos] !== '}') this.fail("expected ',' or '}'");
    }
    this.pos++;
    return { t: 'dict', entries };
  }
}

function describe(v: PyValue): string {
  switch (v.t) {
    case 'str':
      return `the string '${show(v.v)}'`;
    case 'int':
      return `the int ${show(String(v.exact))}`;
    case 'float':
      return `the float ${v.v}`;
    case 'bool':
      return `the bool ${v.v ? 'True' : 'False'}`;
    case 'None':
      return 'None';
    default:
      return `a ${v.t}`;
  }
}

// ---------------------------------------------------------------------------------------
// Header

const KIND_NAMES: Record<string, string> = {
  b: 'bool',
  '?': 'bool',
  i: 'signed integer',
  u: 'unsigned integer',
  c: 'complex',
  O: 'Python object',
  U: 'unicode string',
  S: 'byte string',
  a: 'byte string',
  V: 'void / raw or structured record',
  M: 'datetime',
  m: 'timedelta',
};

function parseDescr(descr: string, numeric = false): { dtype: NpyNumericDescr; littleEndian: boolean } {
  const accepted = numeric ? ACCEPTED_NUMERIC : ACCEPTED;
  const m = /^([<>|=]?)([A-Za-z?])(\d*)(\[\w+\])?$/.exec(descr);
  if (!m) throw new Errors.Npy(`NPY header: '${show(descr)}' is not a valid dtype descriptor; ${accepted}`);
  const [, order, kind, size] = m;
  if (kind === 'f' && (size === '2' || size === '4' || size === '8')) {
    const dtype = size === '2' ? 'float16' : size === '4' ? 'float32' : 'float64';
    return { dtype, littleEndian: order !== '>' };
  }
  if (numeric && m[4] === undefined) {
    const bits = Number(size) * 8;
    if ((kind === 'i' || kind === 'u') && [8, 16, 32, 64].includes(bits)) {
      return { dtype: `${kind === 'u' ? 'u' : ''}int${bits}` as NpyNumericDescr, littleEndian: order !== '>' };
    }
    if ((kind === 'b' || kind === '?') && (size === '1' || size === '')) return { dtype: 'bool', littleEndian: true };
  }
  const what = kind === 'f' ? `a ${Number(size) * 8}-bit float` : (KIND_NAMES[kind!] ?? `unknown kind '${kind}'`);
  throw new Errors.Npy(`NPY header: unsupported dtype '${show(descr)}' (${what}); ${accepted}`);
}

function parseShape(value: PyValue, limits: Limits): number[] {
  if (value.t !== 'tuple') throw new Errors.Npy(`NPY header: 'shape' must be a tuple of ints, got ${describe(value)}`);
  const exact = value.items.map((item, i) => {
    if (item.t !== 'int') throw new Errors.Npy(`NPY header: shape[${i}] must be an int, got ${describe(item)}`);
    if (item.exact < 0n) throw new Errors.Npy(`NPY header: shape[${i}] is ${show(String(item.exact))}; dimensions must be non-negative`);
    return item.exact;
  });
  const shape = exact.map(Number);
  if (shape.length > limits.maxDims) {
    throw new Errors.TensorShape(`NPY shape has ${shape.length} dimensions; the limit is MAX_DIMS=${limits.maxDims}`);
  }
  if (!shape.includes(0)) {
    let n = 1;
    for (const d of shape) {
      n *= d;
      if (n > limits.maxElements) {
        // Exact count via BigInt: the float product may already have lost digits.
        const count = exact.reduce((p, x) => p * x, 1n);
        throw new Errors.TooManyElements(
          `NPY shape (${show(exact.join(', '), 200)}) declares ${show(String(count), 60)} elements; the limit is MAX_ELEMENTS=${limits.maxElements}`,
        );
      }
    }
  }
  // Only reachable for zero-element arrays, where the product check above is skipped.
  const huge = shape.findIndex((d) => !Number.isSafeInteger(d));
  if (huge >= 0) throw new Errors.Npy(`NPY header: shape[${huge}] is ${show(String(exact[huge]))}, too large to address`);
  return shape;
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

function decodeHeaderText(bytes: Uint8Array, version: 1 | 2 | 3): string {
  if (version === 3) {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes.slice()); // slice: TextDecoder refuses views on shared memory
    } catch {
      throw new Errors.Npy('NPY header (format 3.0) is not valid UTF-8');
    }
  }
  return String.fromCharCode(...bytes); // latin1; bounded by MAX_HEADER_BYTES
}

export function parseNpyHeader(buf: Uint8Array, limits: Limits): NpyHeader {
  return parseHeader(buf, limits, false) as NpyHeader;
}

/** NpyHeader with any of the numeric dtypes. */
export type NpyArrayHeader = Omit<NpyHeader, 'dtype'> & { dtype: NpyNumericDescr };

/** The header of an .npy of any numeric dtype (readNpyArray's), without touching the data. */
export function parseNpyArrayHeader(buf: Uint8Array, limits: Limits): NpyArrayHeader {
  return parseHeader(buf, limits, true);
}

function parseHeader(buf: Uint8Array, limits: Limits, numeric: boolean): NpyArrayHeader {
  if (buf.length < 8) throw new Errors.Npy(`NPY file is too short: ${buf.length} bytes, but the magic string and version alone take 8`);
  if (!MAGIC.every((b, i) => buf[i] === b)) {
    throw new Errors.Npy('not an NPY file: it does not start with the magic string \\x93NUMPY');
  }
  const major = buf[6]!;
  const minor = buf[7]!;
  if ((major !== 1 && major !== 2 && major !== 3) || minor !== 0) {
    throw new Errors.Npy(`NPY format version ${major}.${minor} is not supported; only 1.0, 2.0 and 3.0 are`);
  }
  const lenBytes = major === 1 ? 2 : 4;
  const prefix = 8 + lenBytes;
  if (buf.length < prefix) throw new Errors.Npy(`NPY file is truncated inside the ${lenBytes}-byte header length`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  if (prefix + headerLen > buf.length) {
    throw new Errors.Npy(
      `NPY header is truncated: it declares ${headerLen} bytes but only ${buf.length - prefix} bytes follow`,
    );
  }
  if (headerLen > MAX_HEADER_BYTES) {
    throw new Errors.Npy(`NPY header is ${headerLen} bytes; more than ${MAX_HEADER_BYTES} is refused (numpy's own limit)`);
  }
  const text = decodeHeaderText(buf.subarray(prefix, prefix + headerLen), major);
  const dict = new LiteralParser(text).parse();
  if (dict.t !== 'dict') throw new Errors.Npy(`NPY header is not a dict: it is ${describe(dict)}`);

  const expected = ['descr', 'fortran_order', 'shape'];
  const missing = expected.filter((k) => !dict.entries.has(k));
  if (missing.length) throw new Errors.Npy(`NPY header is missing the key(s) ${missing.map((k) => `'${k}'`).join(', ')}`);
  const extra = [...dict.entries.keys()].filter((k) => !expected.includes(k));
  if (extra.length) {
    throw new Errors.Npy(
      `NPY header has unexpected key(s) ${extra.slice(0, 5).map((k) => `'${show(k)}'`).join(', ')}; only 'descr', 'fortran_order' and 'shape' are allowed`,
    );
  }
  const descr = dict.entries.get('descr')!;
  if (descr.t === 'list') {
    throw new Errors.Npy(`NPY header: structured dtypes (a list of fields in 'descr') are not supported; ${numeric ? ACCEPTED_NUMERIC : ACCEPTED}`);
  }
  if (descr.t !== 'str') throw new Errors.Npy(`NPY header: 'descr' must be a dtype string, got ${describe(descr)}`);
  const { dtype, littleEndian } = parseDescr(descr.v, numeric);
  const fortran = dict.entries.get('fortran_order')!;
  if (fortran.t !== 'bool') {
    throw new Errors.Npy(`NPY header: 'fortran_order' must be True or False, got ${describe(fortran)}`);
  }
  const shape = parseShape(dict.entries.get('shape')!, limits);

  const dataOffset = prefix + headerLen;
  const n = elementCount(shape);
  const need = n * ITEM_BYTES[dtype];
  const have = buf.length - dataOffset;
  if (have < need) {
    throw new Errors.Npy(`NPY data is truncated: header declares ${n} elements (${need} bytes) but ${have} bytes follow`);
  }
  if (have > need) {
    // np.save appends arrays this way; silently reading only the first would hide it.
    throw new Errors.Npy(`NPY data has ${have - need} unexpected trailing bytes after the ${n} elements (${need} bytes) the header declares`);
  }
  return { dtype, littleEndian, fortranOrder: fortran.v, shape, dataOffset, version: major };
}

// ---------------------------------------------------------------------------------------
// Data

/** Converts to float32 in file order; DataView because dataOffset need not be aligned. */
function decodeLinear(buf: Uint8Array, h: NpyHeader, out: Float32Array): void {
  const n = out.length;
  const bytes = n * ITEM_BYTES[h.dtype];
  const start = buf.byteOffset + h.dataOffset;
  if (h.dtype === 'float32' && h.littleEndian === HOST_LITTLE_ENDIAN) {
    new Uint8Array(out.buffer, out.byteOffset, bytes).set(buf.subarray(h.dataOffset, h.dataOffset + bytes));
    return;
  }
  const view = new DataView(buf.buffer, start, bytes);
  const le = h.littleEndian;
  if (h.dtype === 'float32') {
    for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, le);
  } else if (h.dtype === 'float64') {
    // Storing into a Float32Array rounds to nearest, ties to even (Math.fround).
    for (let i = 0; i < n; i++) out[i] = view.getFloat64(i * 8, le);
  } else {
    for (let i = 0; i < n; i++) out[i] = halfToFloat(view.getUint16(i * 2, le));
  }
}

/** Scatters Fortran-order src into C-order dst, walking src linearly with an odometer. */
function fortranToC(src: Float32Array | Float64Array, shape: readonly number[], dst: Float32Array | Float64Array): void {
  const rank = shape.length;
  const cStride = new Array<number>(rank);
  for (let k = rank - 1, s = 1; k >= 0; k--) {
    cStride[k] = s;
    s *= shape[k]!;
  }
  const idx = new Array<number>(rank).fill(0);
  let o = 0;
  for (let i = 0; i < src.length; i++) {
    dst[o] = src[i]!;
    for (let k = 0; k < rank; k++) {
      o += cStride[k]!;
      if (++idx[k]! < shape[k]!) break;
      o -= cStride[k]! * shape[k]!;
      idx[k] = 0;
    }
  }
}

/**
 * The array of an .npy file as float32 in C order. Little-endian float32 in C order at a
 * 4-byte aligned offset (what np.save writes) is returned as a view into buf, not a copy: the
 * caller owns buf (the request body, transferred to the worker) and must not change it while
 * the data is in use. Anything else is converted into a new array.
 */
export function readNpy(buf: Uint8Array, limits: Limits): { header: NpyHeader; data: Float32Array } {
  const header = parseNpyHeader(buf, limits);
  const n = elementCount(header.shape);
  // Fortran order only differs from C order when two or more axes are longer than 1.
  const fortran = header.fortranOrder && header.shape.filter((d) => d > 1).length > 1;
  const at = buf.byteOffset + header.dataOffset;
  if (header.dtype === 'float32' && header.littleEndian === HOST_LITTLE_ENDIAN && !fortran && at % 4 === 0) {
    return { header, data: new Float32Array(buf.buffer, at, n) };
  }
  const data = new Float32Array(n);
  if (fortran) {
    const linear = new Float32Array(n);
    decodeLinear(buf, header, linear);
    fortranToC(linear, header.shape, data);
  } else {
    decodeLinear(buf, header, data);
  }
  return { header, data };
}

/**
 * The array of an .npy file of any numeric dtype as its bytes in C order, little-endian, in a
 * new buffer of its own (so typed views on it are aligned). bool is one byte per element, as
 * numpy stores it and onnxruntime takes it.
 */
export function readNpyArray(buf: Uint8Array, limits: Limits, parsed?: NpyArrayHeader): { header: NpyArrayHeader; bytes: Uint8Array<ArrayBuffer> } {
  const header = parsed ?? parseHeader(buf, limits, true);
  const item = ITEM_BYTES[header.dtype];
  const n = elementCount(header.shape);
  const src = buf.subarray(header.dataOffset, header.dataOffset + n * item);
  const linear = new Uint8Array(n * item);
  linear.set(src);
  if (item > 1 && header.littleEndian !== HOST_LITTLE_ENDIAN) {
    for (let at = 0; at < linear.length; at += item) linear.subarray(at, at + item).reverse();
  }
  const fortran = header.fortranOrder && header.shape.filter((d) => d > 1).length > 1;
  if (!fortran) return { header, bytes: linear };
  // Scatter items by index: the float path's odometer, on element indices.
  const out = new Uint8Array(linear.length);
  const rank = header.shape.length;
  const cStride = new Array<number>(rank);
  for (let k = rank - 1, s = 1; k >= 0; k--) {
    cStride[k] = s;
    s *= header.shape[k]!;
  }
  const idx = new Array<number>(rank).fill(0);
  let o = 0;
  for (let i = 0; i < n; i++) {
    out.set(linear.subarray(i * item, (i + 1) * item), o * item);
    for (let k = 0; k < rank; k++) {
      o += cStride[k]!;
      if (++idx[k]! < header.shape[k]!) break;
      o -= cStride[k]! * header.shape[k]!;
      idx[k] = 0;
    }
  }
  return { header, bytes: out };
}

// ---------------------------------------------------------------------------------------
// Writing

interface HeaderLayout {
  text: string;
  version: 1 | 2;
  /** Magic + version + length field + dict + padding + '\n'. */
  size: number;
}

function itemBytesOf(descr: string): number {
  const m = /^[<>|=]?[a-zA-Z](\d+)$/.exec(descr);
  if (!m) throw new Errors.Dtype(`'${show(descr)}' is not an NPY dtype descriptor such as '<f4' or '|u1'`);
  return Number(m[1]);
}

function layoutHeader(descr: string, shape: readonly number[]): HeaderLayout {
  itemBytesOf(descr);
  shape.forEach((d, i) => {
    if (!Number.isSafeInteger(d) || d < 0) throw new Errors.TensorShape(`shape[${i}] must be a non-negative integer, got: ${d}`);
  });
  // Python's repr of a tuple: "()", "(5,)", "(3, 4)".
  const shapeRepr = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let text = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeRepr}, }`;
  if (shape.length > 0) text += ' '.repeat(Math.max(0, GROWTH_AXIS_MAX_DIGITS - String(shape[0]).length));
  const withNewline = text.length + 1;
  // numpy pads with 1..64 spaces, never 0: a dict that already ends on the boundary gets a full block.
  const padded = (prefix: number) => prefix + withNewline + ARRAY_ALIGN - ((prefix + withNewline) % ARRAY_ALIGN);
  const v1 = padded(10);
  if (v1 - 10 <= 0xffff) return { text, version: 1, size: v1 };
  return { text, version: 2, size: padded(12) };
}

function writeHeader(out: Uint8Array, layout: HeaderLayout): void {
  out.set(MAGIC, 0);
  out[6] = layout.version;
  out[7] = 0;
  const prefix = layout.version === 1 ? 10 : 12;
  const view = new DataView(out.buffer, out.byteOffset, prefix);
  if (layout.version === 1) view.setUint16(8, layout.size - prefix, true);
  else view.setUint32(8, layout.size - prefix, true);
  const { text } = layout;
  for (let i = 0; i < text.length; i++) out[prefix + i] = text.charCodeAt(i);
  out.fill(0x20, prefix + text.length, layout.size - 1);
  out[layout.size - 1] = 0x0a;
}

export function npyHeaderBytes(descr: string, shape: readonly number[]): Uint8Array {
  const layout = layoutHeader(descr, shape);
  const out = new Uint8Array(layout.size);
  writeHeader(out, layout);
  return out;
}

/** data must already be little-endian (as typed arrays are on every host Node supports in practice). */
export function encodeNpy(data: ArrayBufferView, descr: string, shape: readonly number[]): Uint8Array {
  const layout = layoutHeader(descr, shape);
  const expected = elementCount(shape) * itemBytesOf(descr);
  if (data.byteLength !== expected) {
    throw new Errors.TensorData(
      `NPY encode: shape (${shape.join(', ')}) of '${show(descr)}' needs ${expected} bytes but the data has ${data.byteLength}`,
    );
  }
  const out = new Uint8Array(layout.size + data.byteLength);
  writeHeader(out, layout);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), layout.size);
  return out;
}

// ---------------------------------------------------------------------------------------
// Numeric arrays of any element type (scale and zero-point members, model inputs)

export const NPY_NUMERIC_DTYPES = ['float16', 'float32', 'float64', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32', 'uint64', 'bool'] as const satisfies readonly NpyNumericDescr[];
export type NpyNumericDType = NpyNumericDescr;

/**
 * Any numeric .npy as float64 values in C order, with its element type. 64-bit integers
 * past 2^53 (which a double cannot hold exactly) are refused, naming the first.
 */
export function readNpyNumeric(buf: Uint8Array, limits: Limits, field = 'array'): { dtype: NpyNumericDType; shape: number[]; data: Float64Array } {
  const h = parseHeader(buf, limits, true);
  const n = elementCount(h.shape);
  const size = ITEM_BYTES[h.dtype];
  const view = new DataView(buf.buffer, buf.byteOffset + h.dataOffset, n * size);
  const le = h.littleEndian;
  const linear = new Float64Array(n);
  const read: (i: number) => number = (() => {
    switch (h.dtype) {
      case 'float16': return (i) => halfToFloat(view.getUint16(i * 2, le));
      case 'float32': return (i) => view.getFloat32(i * 4, le);
      case 'float64': return (i) => view.getFloat64(i * 8, le);
      case 'int8': return (i) => view.getInt8(i);
      case 'uint8': return (i) => view.getUint8(i);
      case 'bool': return (i) => (view.getUint8(i) !== 0 ? 1 : 0);
      case 'int16': return (i) => view.getInt16(i * 2, le);
      case 'uint16': return (i) => view.getUint16(i * 2, le);
      case 'int32': return (i) => view.getInt32(i * 4, le);
      case 'uint32': return (i) => view.getUint32(i * 4, le);
      case 'int64': return (i) => exact(view.getBigInt64(i * 8, le), i);
      case 'uint64': return (i) => exact(view.getBigUint64(i * 8, le), i);
    }
  })();
  function exact(v: bigint, i: number): number {
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new Errors.Npy(`${field}: element ${i} is ${show(String(v))}, past the 2^53 a value may have here`);
    }
    return Number(v);
  }
  for (let i = 0; i < n; i++) linear[i] = read(i);
  const fortran = h.fortranOrder && h.shape.filter((d) => d > 1).length > 1;
  if (!fortran) return { dtype: h.dtype, shape: h.shape, data: linear };
  const data = new Float64Array(n);
  fortranToC(linear, h.shape, data);
  return { dtype: h.dtype, shape: h.shape, data };
}

import { Errors } from '../errors.js';

// safetensors: an 8-byte little-endian header length N, N bytes of UTF-8 JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}, then
// the data, offsets relative to its start. The header is untrusted: its length is bounded
// before anything is decoded, and every tensor's range is checked against its dtype and shape
// and against the file, with no overlaps and no holes (the format's own rule: the data must
// be indexed entirely, so no bytes can hide in a file that looks like weights).

/** The safetensors library's own bound on the header (MAX_HEADER_SIZE). */
export const MAX_HEADER_BYTES = 100_000_000;
const MAX_RANK = 32;

export const SAFETENSORS_DTYPES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
} as const;
export type SafetensorsDtype = keyof typeof SAFETENSORS_DTYPES;

export interface SafetensorsTensor {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Byte range in the whole file (not relative to the data). */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  metadata: Record<string, string> | undefined;
  /** In file order. */
  tensors: SafetensorsTensor[];
  dataStart: number;
}

const fail = (message: string): never => {
  throw new Errors.Safetensors(`safetensors: ${message}`);
};

function isSafeCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * The header length N from the file's first 8 bytes, checked against the limit and the file's
 * length: what a reader needs before it reads the 8 + N header bytes (the file need not be in memory).
 */
export function safetensorsHeaderLength(first8: Uint8Array, fileLength: number, maxHeaderBytes = MAX_HEADER_BYTES): number {
  if (fileLength < 8 || first8.length < 8) fail(`the file is ${fileLength} bytes, too short for the 8-byte header length`);
  const view = new DataView(first8.buffer, first8.byteOffset, 8);
  const lo = view.getUint32(0, true);
  const hi = view.getUint32(4, true);
  const n = hi * 2 ** 32 + lo;
  if (hi >= 2 ** 21 || n > maxHeaderBytes) fail(`the header length ${n} is over the limit of ${maxHeaderBytes} bytes`);
  if (8 + n > fileLength) fail(`the header length ${n} runs past the end of the file (${fileLength} bytes)`);
  return n;
}

/** The header, every entry checked; `bytes` is the whole file. */
export function readSafetensorsHeader(bytes: Uint8Array, maxHeaderBytes = MAX_HEADER_BYTES): SafetensorsHeader {
  const n = safetensorsHeaderLength(bytes, bytes.length, maxHeaderBytes);
  return parseSafetensorsHeader(bytes.subarray(0, 8 + n), bytes.length, maxHeaderBytes);
}

/**
 * The header from the file's first 8 + N bytes (`head`) and the file's length: every entry
 * checked against the whole file without reading its data (a shard on disk, a stream).
 */
export function parseSafetensorsHeader(head: Uint8Array, fileLength: number, maxHeaderBytes = MAX_HEADER_BYTES): SafetensorsHeader {
  const n = safetensorsHeaderLength(head, fileLength, maxHeaderBytes);
  if (head.length < 8 + n) throw new RangeError(`parseSafetensorsHeader: ${head.length} bytes given, the header needs ${8 + n}`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(head.subarray(8, 8 + n));
  } catch {
    return fail('the header is not valid UTF-8');
  }
  if (!text.startsWith('{')) fail('the header does not start with a JSON object');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return fail(`the header is not valid JSON: ${(err as Error).message}`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) return fail('the header is not a JSON object');
  const dataStart = 8 + n;
  const dataLength = fileLength - dataStart;
  let metadata: Record<string, string> | undefined;
  const tensors: SafetensorsTensor[] = [];
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) fail('__metadata__ must be an object of strings');
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) if (typeof v !== 'string') fail(`__metadata__.${k} must be a string`);
      metadata = value as Record<string, string>;
      continue;
    }
    const at = `tensor '${name}'`;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(`${at}: its entry is not an object`);
    const e = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e.dtype !== 'string' || !Object.hasOwn(SAFETENSORS_DTYPES, e.dtype)) fail(`${at}: unknown dtype ${JSON.stringify(e.dtype)}; one of ${Object.keys(SAFETENSORS_DTYPES).join(', ')}`);
    if (!Array.isArray(e.shape) || e.shape.length > MAX_RANK || !e.shape.every(isSafeCount)) fail(`${at}: shape must be a list of at most ${MAX_RANK} non-negative integers`);
    const offsets = e.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isSafeCount) || offsets[0] > offsets[1]) {
      fail(`${at}: data_offsets must be [begin, end] with 0 <= begin <= end`);
    }
    const dtype = e.dtype as SafetensorsDtype;
    const shape = e.shape as number[];
    const [begin, end] = offsets as [number, number];
    let count = 1;
    for (const d of shape) {
      count *= d;
      if (!Number.isSafeInteger(count)) fail(`${at}: shape [${shape.join(', ')}] has too many elements`);
    }
    const need = count * SAFETENSORS_DTYPES[dtype];
    if (end - begin !== need) fail(`${at}: ${dtype} of shape [${shape.join(', ')}] takes ${need} bytes, but data_offsets [${begin}, ${end}] hold ${end - begin}`);
    if (end > dataLength) fail(`${at}: data_offsets [${begin}, ${end}] run past the end of the data (${dataLength} bytes)`);
    tensors.push({ name, dtype, shape, begin: dataStart + begin, end: dataStart + end });
  }
  // Sorted by range, every tensor must start where the previous one ended.
  const sorted = [...tensors].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = dataStart;
  let previous: string | undefined;
  for (const t of sorted) {
    if (t.begin < cursor) fail(`tensor '${t.name}' overlaps tensor '${previous}' (bytes ${t.begin - dataStart}..${cursor - dataStart} of the data)`);
    if (t.begin > cursor) fail(`tensor '${t.name}' starts at byte ${t.begin - dataStart} of the data, leaving a hole after ${previous ? `tensor '${previous}'` : 'the header'} (the data must be indexed entirely)`);
    cursor = t.end;
    previous = t.name;
  }
  if (cursor !== fileLength) fail(`${fileLength - cursor} bytes after the last tensor${previous ? ` ('${previous}')` : ''} belong to no tensor`);
  return { metadata, tensors, dataStart };
}

export interface SafetensorsOutput {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  data: Uint8Array;
}

export interface SafetensorsSpec {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
}

/**
 * The header of a file holding `tensors` in this order (their data follows it back to back),
 * padded with spaces to a multiple of 8 bytes as the library writes it. Known before any data
 * exists, so a writer can stream the tensors after it.
 */
export function encodeSafetensorsHeader(tensors: SafetensorsSpec[], metadata?: Record<string, string>): { head: Uint8Array; dataBytes: number } {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * SAFETENSORS_DTYPES[t.dtype];
    if (Object.hasOwn(header, t.name)) throw new RangeError(`tensor '${t.name}' is written twice`);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  const head = Buffer.alloc(8 + padded, 0x20);
  head.writeUInt32LE(padded % 2 ** 32, 0);
  head.writeUInt32LE(Math.floor(padded / 2 ** 32), 4);
  json.copy(head, 8);
  return { head: new Uint8Array(head.buffer, head.byteOffset, head.length), dataBytes: offset };
}

/** A safetensors file as pieces (header, then each tensor's bytes in order, no copies of the data). */
export function encodeSafetensors(tensors: SafetensorsOutput[], metadata?: Record<string, string>): { pieces: Uint8Array[]; length: number } {
  for (const t of tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count * SAFETENSORS_DTYPES[t.dtype] !== t.data.length) throw new RangeError(`tensor '${t.name}': ${t.data.length} bytes for ${t.dtype} [${t.shape.join(', ')}]`);
  }
  const { head, dataBytes } = encodeSafetensorsHeader(tensors, metadata);
  return { pieces: [head, ...tensors.map((t) => t.data)], length: head.length + dataBytes };
}

/** The pieces joined into one buffer. */
export function concatPieces(parts: { pieces: Uint8Array[]; length: number }): Uint8Array {
  const out = new Uint8Array(parts.length);
  let at = 0;
  for (const p of parts.pieces) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

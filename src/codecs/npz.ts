import { inflateRawSync } from 'node:zlib';
import { constants as bufferConstants } from 'node:buffer';
import { Errors } from '../errors.js';
import { crc32 } from './crc32.js';

// .npz is a plain zip of .npy members (numpy writes them with zipfile). Layout per
// APPNOTE.TXT: [local header, data]* central-directory* [zip64 EOCD, zip64 locator] EOCD.

export interface NpzEntry {
  /** Name as stored in the zip, e.g. 'quantized.npy' or 'report.json'. */
  name: string;
  data: Uint8Array;
}

/**
 * A member to write: its bytes, or the pieces they are made of (an .npy header and the array
 * it describes), which go into the archive as they are, without being joined first.
 */
export interface NpzMember {
  name: string;
  data: Uint8Array | readonly Uint8Array[];
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const LOCAL_SIZE = 30;
const CENTRAL_SIZE = 46;
const EOCD_SIZE = 22;
const ZIP64_EOCD_SIZE = 56;
const ZIP64_LOCATOR_SIZE = 20;
const MAX32 = 0xffffffff;
const MAX16 = 0xffff;
const DOS_DATE_1980_01_01 = (0 << 9) | (1 << 5) | 1;
const VERSION_STORED = 20;
const VERSION_ZIP64 = 45;
// "Made by" Unix so the 0644 permissions in the external attributes mean something to unzip.
const MADE_BY_UNIX = 3 << 8;
const EXTERNAL_ATTR_0644 = 0o100644 * 0x10000;
const FLAG_ENCRYPTED = 0x0001;
const FLAG_UTF8 = 0x0800;
const DEFAULT_MAX_ENTRY_BYTES = 2 ** 30;

// ---------------------------------------------------------------------------------------
// Writing

interface Planned {
  name: Uint8Array;
  parts: readonly Uint8Array[];
  size: number;
  crc: number;
  offset: number;
  zip64: boolean;
  utf8: boolean;
}

function setU64(view: DataView, at: number, value: number): void {
  view.setBigUint64(at, BigInt(value), true);
}

/**
 * forceZip64 writes zip64 records even for small archives (as numpy's savez does for its
 * local headers); it exists so the large-archive code path can be tested without 4 GiB.
 */
export function encodeNpz(entries: readonly NpzMember[], options: { forceZip64?: boolean } = {}): Uint8Array {
  const force = options.forceZip64 === true;
  const encoder = new TextEncoder();
  let offset = 0;
  const planned: Planned[] = entries.map(({ name, data }) => {
    const nameBytes = encoder.encode(name);
    const parts = data instanceof Uint8Array ? [data] : data;
    const size = parts.reduce((s, part) => s + part.length, 0);
    const crc = parts.reduce((c, part) => crc32(part, c), 0);
    const zip64 = force || size >= MAX32 || offset >= MAX32;
    // eslint-disable-next-line no-control-regex
    const p = { name: nameBytes, parts, size, crc, offset, zip64, utf8: /[^\x00-\x7f]/.test(name) };
    offset += LOCAL_SIZE + nameBytes.length + (zip64 ? 20 : 0) + size;
    return p;
  });
  const cdOffset = offset;
  const cdSize = planned.reduce((s, p) => s + CENTRAL_SIZE + p.name.length + (p.zip64 ? 28 : 0), 0);
  const zip64End = force || planned.length >= MAX16 || cdOffset >= MAX32 || cdSize >= MAX32;
  const total = cdOffset + cdSize + (zip64End ? ZIP64_EOCD_SIZE + ZIP64_LOCATOR_SIZE : 0) + EOCD_SIZE;

  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  for (const p of planned) {
    let at = p.offset;
    view.setUint32(at, SIG_LOCAL, true);
    view.setUint16(at + 4, p.zip64 ? VERSION_ZIP64 : VERSION_STORED, true);
    view.setUint16(at + 6, p.utf8 ? FLAG_UTF8 : 0, true);
    view.setUint16(at + 8, 0, true); // STORED
    view.setUint16(at + 10, 0, true); // 00:00:00
    view.setUint16(at + 12, DOS_DATE_1980_01_01, true);
    view.setUint32(at + 14, p.crc, true);
    view.setUint32(at + 18, p.zip64 ? MAX32 : p.size, true);
    view.setUint32(at + 22, p.zip64 ? MAX32 : p.size, true);
    view.setUint16(at + 26, p.name.length, true);
    view.setUint16(at + 28, p.zip64 ? 20 : 0, true);
    out.set(p.name, at + LOCAL_SIZE);
    at += LOCAL_SIZE + p.name.length;
    if (p.zip64) {
      // The local zip64 field must carry both sizes, in this order.
      view.setUint16(at, 0x0001, true);
      view.setUint16(at + 2, 16, true);
      setU64(view, at + 4, p.size);
      setU64(view, at + 12, p.size);
      at += 20;
    }
    for (const part of p.parts) {
      out.set(part, at);
      at += part.length;
    }
  }

  let at = cdOffset;
  for (const p of planned) {
    view.setUint32(at, SIG_CENTRAL, true);
    view.setUint16(at + 4, MADE_BY_UNIX | (p.zip64 ? VERSION_ZIP64 : VERSION_STORED), true);
    view.setUint16(at + 6, p.zip64 ? VERSION_ZIP64 : VERSION_STORED, true);
    view.setUint16(at + 8, p.utf8 ? FLAG_UTF8 : 0, true);
    view.setUint16(at + 10, 0, true);
    view.setUint16(at + 12, 0, true);
    view.setUint16(at + 14, DOS_DATE_1980_01_01, true);
    view.setUint32(at + 16, p.crc, true);
    view.setUint32(at + 20, p.zip64 ? MAX32 : p.size, true);
    view.setUint32(at + 24, p.zip64 ? MAX32 : p.size, true);
    view.setUint16(at + 28, p.name.length, true);
    view.setUint16(at + 30, p.zip64 ? 28 : 0, true);
    view.setUint16(at + 32, 0, true); // comment length
    view.setUint16(at + 34, 0, true); // disk number
    view.setUint16(at + 36, 0, true); // internal attributes
    view.setUint32(at + 38, EXTERNAL_ATTR_0644, true);
    view.setUint32(at + 42, p.zip64 ? MAX32 : p.offset, true);
    out.set(p.name, at + CENTRAL_SIZE);
    at += CENTRAL_SIZE + p.name.length;
    if (p.zip64) {
      // Readers take the fields whose 32-bit slot holds 0xFFFFFFFF from here, in this order.
      view.setUint16(at, 0x0001, true);
      view.setUint16(at + 2, 24, true);
      setU64(view, at + 4, p.size);
      setU64(view, at + 12, p.size);
      setU64(view, at + 20, p.offset);
      at += 28;
    }
  }

  if (zip64End) {
    const z = at;
    view.setUint32(z, SIG_ZIP64_EOCD, true);
    setU64(view, z + 4, ZIP64_EOCD_SIZE - 12); // size of the rest of this record
    view.setUint16(z + 12, MADE_BY_UNIX | VERSION_ZIP64, true);
    view.setUint16(z + 14, VERSION_ZIP64, true);
    view.setUint32(z + 16, 0, true);
    view.setUint32(z + 20, 0, true);
    setU64(view, z + 24, planned.length);
    setU64(view, z + 32, planned.length);
    setU64(view, z + 40, cdSize);
    setU64(view, z + 48, cdOffset);
    at += ZIP64_EOCD_SIZE;
    view.setUint32(at, SIG_ZIP64_LOCATOR, true);
    view.setUint32(at + 4, 0, true);
    setU64(view, at + 8, z);
    view.setUint32(at + 16, 1, true);
    at += ZIP64_LOCATOR_SIZE;
  }
  view.setUint32(at, SIG_EOCD, true);
  view.setUint16(at + 4, 0, true);
  view.setUint16(at + 6, 0, true);
  view.setUint16(at + 8, zip64End ? MAX16 : planned.length, true);
  view.setUint16(at + 10, zip64End ? MAX16 : planned.length, true);
  view.setUint32(at + 12, zip64End ? MAX32 : cdSize, true);
  view.setUint32(at + 16, zip64End ? MAX32 : cdOffset, true);
  view.setUint16(at + 20, 0, true);
  return out;
}

// ---------------------------------------------------------------------------------------
// Reading

interface CentralEntry {
  name: string;
  nameBytes: Uint8Array;
  method: number;
  crc: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

function fail(message: string): never {
  throw new Errors.Npy(`NPZ ${message}`);
}

function u64(view: DataView, at: number, what: string): number {
  const v = view.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`${what} ${v} is too large`);
  return Number(v);
}

function findEocd(buf: Uint8Array, view: DataView): number {
  if (buf.length < EOCD_SIZE) fail(`is not a zip archive: ${buf.length} bytes is shorter than the end-of-central-directory record`);
  // The record ends the file, followed only by a comment of at most 65535 bytes.
  const lowest = Math.max(0, buf.length - EOCD_SIZE - MAX16);
  for (let at = buf.length - EOCD_SIZE; at >= lowest; at--) {
    if (view.getUint32(at, true) === SIG_EOCD && at + EOCD_SIZE + view.getUint16(at + 20, true) === buf.length) return at;
  }
  fail('is not a zip archive: no end-of-central-directory record found');
}

function readDirectoryBounds(buf: Uint8Array, view: DataView): { count: number; cdOffset: number; cdSize: number; cdEnd: number } {
  const eocd = findEocd(buf, view);
  let count = view.getUint16(eocd + 10, true);
  let cdSize = view.getUint32(eocd + 12, true);
  let cdOffset = view.getUint32(eocd + 16, true);
  let cdEnd = eocd;
  const locator = eocd - ZIP64_LOCATOR_SIZE;
  if (locator >= 0 && view.getUint32(locator, true) === SIG_ZIP64_LOCATOR) {
    const z = u64(view, locator + 8, 'zip64 end-of-central-directory offset');
    if (z + ZIP64_EOCD_SIZE > locator || view.getUint32(z, true) !== SIG_ZIP64_EOCD) {
      fail('zip64 end-of-central-directory record is missing or misplaced');
    }
    count = u64(view, z + 32, 'entry count');
    cdSize = u64(view, z + 40, 'central directory size');
    cdOffset = u64(view, z + 48, 'central directory offset');
    cdEnd = z;
  }
  if (cdOffset + cdSize > cdEnd) {
    fail(`is truncated or corrupt: the central directory (${cdSize} bytes at offset ${cdOffset}) runs past its end record at ${cdEnd}`);
  }
  if (count * CENTRAL_SIZE > cdSize) fail(`declares ${count} entries but its central directory holds only ${cdSize} bytes`);
  return { count, cdOffset, cdSize, cdEnd };
}

function decodeName(bytes: Uint8Array, utf8: boolean): string {
  try {
    // Non-UTF-8 names are CP437 by the spec; numpy only ever writes ASCII, so decode
    // leniently rather than carry a CP437 table.
    return new TextDecoder('utf-8', { fatal: utf8 }).decode(bytes);
  } catch {
    fail('entry name is flagged UTF-8 but is not valid UTF-8');
  }
}

function readCentralEntry(buf: Uint8Array, view: DataView, at: number, end: number): { entry: CentralEntry; next: number } {
  if (at + CENTRAL_SIZE > end || view.getUint32(at, true) !== SIG_CENTRAL) fail(`central directory entry at offset ${at} is corrupt`);
  const flags = view.getUint16(at + 8, true);
  const nameLen = view.getUint16(at + 28, true);
  const extraLen = view.getUint16(at + 30, true);
  const commentLen = view.getUint16(at + 32, true);
  const next = at + CENTRAL_SIZE + nameLen + extraLen + commentLen;
  if (next > end) fail(`central directory entry at offset ${at} runs past the directory`);
  const nameBytes = buf.subarray(at + CENTRAL_SIZE, at + CENTRAL_SIZE + nameLen);
  const name = decodeName(nameBytes, (flags & FLAG_UTF8) !== 0);
  if (flags & FLAG_ENCRYPTED) fail(`entry '${name}' is encrypted, which is not supported`);
  let compressedSize = view.getUint32(at + 20, true);
  let size = view.getUint32(at + 24, true);
  let localOffset = view.getUint32(at + 42, true);
  if (size === MAX32 || compressedSize === MAX32 || localOffset === MAX32) {
    // Walk the extra fields for the zip64 one (id 1): it holds, in order, exactly those
    // values whose 32-bit slot was saturated.
    let p = at + CENTRAL_SIZE + nameLen;
    const extraEnd = p + extraLen;
    let found = false;
    while (p + 4 <= extraEnd) {
      const id = view.getUint16(p, true);
      const len = view.getUint16(p + 2, true);
      const dataEnd = p + 4 + len;
      if (dataEnd > extraEnd) break;
      if (id === 0x0001) {
        let q = p + 4;
        const take = (what: string): number => {
          if (q + 8 > dataEnd) fail(`entry '${name}': zip64 extra field is too short for its ${what}`);
          const v = u64(view, q, `entry '${name}' ${what}`);
          q += 8;
          return v;
        };
        if (size === MAX32) size = take('size');
        if (compressedSize === MAX32) compressedSize = take('compressed size');
        if (localOffset === MAX32) localOffset = take('offset');
        found = true;
        break;
      }
      p = dataEnd;
    }
    if (!found) fail(`entry '${name}' has 32-bit fields set to 0xFFFFFFFF but no zip64 extra field`);
  }
  const method = view.getUint16(at + 10, true);
  const crc = view.getUint32(at + 16, true);
  return { entry: { name, nameBytes, method, crc, compressedSize, size, localOffset }, next };
}

function dataStart(buf: Uint8Array, view: DataView, e: CentralEntry, limit: number): number {
  const at = e.localOffset;
  if (at + LOCAL_SIZE > limit || view.getUint32(at, true) !== SIG_LOCAL) {
    fail(`entry '${e.name}': no local file header at offset ${at}`);
  }
  const nameLen = view.getUint16(at + 26, true);
  const start = at + LOCAL_SIZE + nameLen + view.getUint16(at + 28, true);
  const localName = buf.subarray(at + LOCAL_SIZE, Math.min(limit, at + LOCAL_SIZE + nameLen));
  if (localName.length !== e.nameBytes.length || !localName.every((b, i) => b === e.nameBytes[i])) {
    fail(`entry '${e.name}': the local header names a different file than the central directory`);
  }
  if (start + e.compressedSize > limit) {
    fail(`entry '${e.name}' is truncated: ${e.compressedSize} bytes of data at offset ${start} run past the archive data`);
  }
  return start;
}

function extract(raw: Uint8Array, e: CentralEntry, maxEntryBytes: number): Uint8Array {
  if (e.size > maxEntryBytes) fail(`entry '${e.name}' declares ${e.size} bytes; the limit is ${maxEntryBytes}`);
  if (e.method === 0) {
    if (e.compressedSize !== e.size) {
      fail(`entry '${e.name}' is stored uncompressed but declares ${e.compressedSize} stored and ${e.size} uncompressed bytes`);
    }
    return raw;
  }
  if (e.method !== 8) {
    fail(`entry '${e.name}' uses compression method ${e.method}; only stored (0) and deflate (8) are supported`);
  }
  try {
    // One byte over the declared size is enough to tell a lying header from a good one.
    const out = inflateRawSync(raw, { maxOutputLength: Math.min(e.size + 1, bufferConstants.MAX_LENGTH) });
    // A plain Uint8Array, like the stored entries, rather than a Buffer subclass.
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'ERR_BUFFER_TOO_LARGE') fail(`entry '${e.name}' inflates to more than the ${e.size} bytes it declares`);
    fail(`entry '${e.name}' is not valid deflate data (${(err as Error).message})`);
  }
}

/**
 * Entries are returned in central-directory order. Stored entries are views into buf,
 * not copies. Overlapping entries are refused: pointing many directory entries at one
 * deflate stream is the classic way to make a small zip inflate to gigabytes.
 */
export function decodeNpz(buf: Uint8Array, maxEntryBytes = DEFAULT_MAX_ENTRY_BYTES): NpzEntry[] {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const { count, cdOffset, cdSize } = readDirectoryBounds(buf, view);
  const entries: CentralEntry[] = [];
  for (let i = 0, at = cdOffset; i < count; i++) {
    const { entry, next } = readCentralEntry(buf, view, at, cdOffset + cdSize);
    entries.push(entry);
    at = next;
  }

  const starts = new Map<CentralEntry, number>();
  let previousEnd = 0;
  for (const e of [...entries].sort((a, b) => a.localOffset - b.localOffset)) {
    if (e.localOffset < previousEnd) fail(`entry '${e.name}' overlaps the entry before it`);
    const start = dataStart(buf, view, e, cdOffset);
    starts.set(e, start);
    previousEnd = start + e.compressedSize;
  }

  return entries.map((e) => {
    const start = starts.get(e)!;
    const data = extract(buf.subarray(start, start + e.compressedSize), e, maxEntryBytes);
    if (data.length !== e.size) fail(`entry '${e.name}' inflates to ${data.length} bytes but declares ${e.size}`);
    const actual = crc32(data);
    if (actual !== e.crc) {
      fail(`entry '${e.name}' fails its CRC-32 check: stored ${hex(e.crc)}, computed ${hex(actual)}`);
    }
    return { name: e.name, data };
  });
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

/**
 * The members' names and declared uncompressed sizes, read from the central directory alone
 * (nothing is inflated): lets a caller refuse an archive whose members add up to more than it
 * will hold before decodeNpz allocates any of them (decodeNpz then holds each member to its
 * declared size).
 */
export function npzEntrySizes(buf: Uint8Array): { name: string; size: number }[] {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const { count, cdOffset, cdSize } = readDirectoryBounds(buf, view);
  const out: { name: string; size: number }[] = [];
  for (let i = 0, at = cdOffset; i < count; i++) {
    const { entry, next } = readCentralEntry(buf, view, at, cdOffset + cdSize);
    out.push({ name: entry.name, size: entry.size });
    at = next;
  }
  return out;
}

import { Readable } from 'node:stream';

// A stored (uncompressed) zip assembled while it streams: the entries' sizes and CRC-32s
// are known beforehand (recorded when the files were written), so every header is exact,
// the total length is known for Content-Length, and no entry is ever held in memory.
// Zip64 records throughout: a model's data file is routinely past 4 GiB.

export interface ZipEntry {
  name: string;
  size: number;
  crc: number;
  open(): Readable | Promise<Readable>;
}

const LOCAL = 30;
const CENTRAL = 46;
const LOCAL_EXTRA = 20;
const CENTRAL_EXTRA = 28;
const ZIP64_EOCD = 56;
const ZIP64_LOCATOR = 20;
const EOCD = 22;
const MAX32 = 0xffffffff;
const MAX16 = 0xffff;
const VERSION_ZIP64 = 45;
const MADE_BY_UNIX = 3 << 8;
const FLAG_UTF8 = 0x0800;
const DOS_DATE_1980_01_01 = (0 << 9) | (1 << 5) | 1;
const EXTERNAL_ATTR_0644 = 0o100644 * 0x10000;

function localHeader(name: Uint8Array, e: ZipEntry): Uint8Array {
  const out = new Uint8Array(LOCAL + name.length + LOCAL_EXTRA);
  const v = new DataView(out.buffer);
  v.setUint32(0, 0x04034b50, true);
  v.setUint16(4, VERSION_ZIP64, true);
  v.setUint16(6, FLAG_UTF8, true);
  v.setUint16(12, DOS_DATE_1980_01_01, true);
  v.setUint32(14, e.crc, true);
  v.setUint32(18, MAX32, true);
  v.setUint32(22, MAX32, true);
  v.setUint16(26, name.length, true);
  v.setUint16(28, LOCAL_EXTRA, true);
  out.set(name, LOCAL);
  const x = LOCAL + name.length;
  v.setUint16(x, 0x0001, true);
  v.setUint16(x + 2, 16, true);
  v.setBigUint64(x + 4, BigInt(e.size), true);
  v.setBigUint64(x + 12, BigInt(e.size), true);
  return out;
}

function centralDirectory(names: Uint8Array[], entries: ZipEntry[], offsets: number[], cdOffset: number): Uint8Array {
  const cdSize = names.reduce((s, n) => s + CENTRAL + n.length + CENTRAL_EXTRA, 0);
  const out = new Uint8Array(cdSize + ZIP64_EOCD + ZIP64_LOCATOR + EOCD);
  const v = new DataView(out.buffer);
  let at = 0;
  entries.forEach((e, i) => {
    const name = names[i]!;
    v.setUint32(at, 0x02014b50, true);
    v.setUint16(at + 4, MADE_BY_UNIX | VERSION_ZIP64, true);
    v.setUint16(at + 6, VERSION_ZIP64, true);
    v.setUint16(at + 8, FLAG_UTF8, true);
    v.setUint16(at + 14, DOS_DATE_1980_01_01, true);
    v.setUint32(at + 16, e.crc, true);
    v.setUint32(at + 20, MAX32, true);
    v.setUint32(at + 24, MAX32, true);
    v.setUint16(at + 28, name.length, true);
    v.setUint16(at + 30, CENTRAL_EXTRA, true);
    v.setUint32(at + 38, EXTERNAL_ATTR_0644, true);
    v.setUint32(at + 42, MAX32, true);
    out.set(name, at + CENTRAL);
    const x = at + CENTRAL + name.length;
    v.setUint16(x, 0x0001, true);
    v.setUint16(x + 2, 24, true);
    v.setBigUint64(x + 4, BigInt(e.size), true);
    v.setBigUint64(x + 12, BigInt(e.size), true);
    v.setBigUint64(x + 20, BigInt(offsets[i]!), true);
    at = x + CENTRAL_EXTRA;
  });
  const z = at;
  v.setUint32(z, 0x06064b50, true);
  v.setBigUint64(z + 4, BigInt(ZIP64_EOCD - 12), true);
  v.setUint16(z + 12, MADE_BY_UNIX | VERSION_ZIP64, true);
  v.setUint16(z + 14, VERSION_ZIP64, true);
  v.setBigUint64(z + 24, BigInt(entries.length), true);
  v.setBigUint64(z + 32, BigInt(entries.length), true);
  v.setBigUint64(z + 40, BigInt(cdSize), true);
  v.setBigUint64(z + 48, BigInt(cdOffset), true);
  const loc = z + ZIP64_EOCD;
  v.setUint32(loc, 0x07064b50, true);
  v.setBigUint64(loc + 8, BigInt(cdOffset + cdSize), true);
  v.setUint32(loc + 16, 1, true);
  const end = loc + ZIP64_LOCATOR;
  v.setUint32(end, 0x06054b50, true);
  v.setUint16(end + 8, MAX16, true);
  v.setUint16(end + 10, MAX16, true);
  v.setUint32(end + 12, MAX32, true);
  v.setUint32(end + 16, MAX32, true);
  return out;
}

/** The archive's exact length and a stream of its bytes. */
export function zipStream(entries: ZipEntry[]): { length: number; stream: () => Readable } {
  const names = entries.map((e) => new TextEncoder().encode(e.name));
  const headers = entries.map((e, i) => localHeader(names[i]!, e));
  const offsets: number[] = [];
  let at = 0;
  entries.forEach((e, i) => {
    offsets.push(at);
    at += headers[i]!.length + e.size;
  });
  const tail = centralDirectory(names, entries, offsets, at);
  const length = at + tail.length;
  async function* bytes() {
    for (const [i, e] of entries.entries()) {
      yield headers[i]!;
      yield* await e.open();
    }
    yield tail;
  }
  return { length, stream: () => Readable.from(bytes(), { objectMode: false }) };
}

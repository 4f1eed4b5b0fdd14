import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as zlib from 'node:zlib';
import fc from 'fast-check';
import { crc32, crc32Table } from '../../src/codecs/crc32.js';
import { encodeNpy, readNpy } from '../../src/codecs/npy.js';
import { decodeNpz, encodeNpz, type NpzEntry } from '../../src/codecs/npz.js';

const FIXTURES = new URL('../../../test/fixtures/npy/', import.meta.url);
const fixture = (name: string): Uint8Array => new Uint8Array(readFileSync(new URL(name, FIXTURES)));
const expected = JSON.parse(readFileSync(new URL('expected.json', FIXTURES), 'utf8')) as {
  npz: { a: { shape: number[]; values: number[] }; b: { shape: number[]; descr: string; values: number[] } };
};
const LIMITS = { maxElements: 1_000_000, maxDims: 8 };
const bytes = (s: string) => new TextEncoder().encode(s);

function npzError(fn: () => unknown, message: RegExp | string): void {
  assert.throws(fn, (err: { code?: string; message: string }) => {
    assert.equal(err.code, 'QUANT_ERR_NPY', `wrong error: ${String(err)}`);
    if (typeof message === 'string') assert.equal(err.message, message);
    else assert.match(err.message, message);
    return true;
  });
}

const sample: NpzEntry[] = [
  { name: 'quantized.npy', data: encodeNpy(Int8Array.from([-8, -1, 0, 3, 7, 2]), '|i1', [2, 3]) },
  { name: 'scale.npy', data: encodeNpy(Float32Array.from([0.5, 0.25]), '<f4', [2, 1]) },
  { name: 'report.json', data: bytes('{"mse":0.01}') },
  { name: 'empty', data: new Uint8Array(0) },
  { name: 'ünïcode.npy', data: encodeNpy(Uint16Array.from([1, 65535]), '<u2', [2]) },
];

/** Offset of the central directory, read from the (non-zip64) end record. */
function cdOffsetOf(zip: Uint8Array): number {
  return new DataView(zip.buffer, zip.byteOffset).getUint32(zip.length - 22 + 16, true);
}

describe('crc32', () => {
  it('gives the standard check value and chains across chunks', () => {
    assert.equal(crc32(bytes('123456789')), 0xcbf43926);
    assert.equal(crc32(new Uint8Array(0)), 0);
    assert.equal(crc32(bytes('56789'), crc32(bytes('1234'))), 0xcbf43926);
    assert.equal(crc32Table(bytes('56789'), crc32Table(bytes('1234'))), 0xcbf43926);
  });

  it('agrees with zlib, the table fallback too (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.nat(), (data, previous) => {
        assert.equal(crc32(data), zlib.crc32(data));
        assert.equal(crc32Table(data, previous), zlib.crc32(data, previous));
      }),
    );
  });
});

describe('decodeNpz on archives numpy wrote', () => {
  for (const name of ['savez.npz', 'savez_compressed.npz']) {
    it(name, () => {
      const entries = decodeNpz(fixture(name));
      assert.deepEqual(entries.map((e) => e.name), ['a.npy', 'b.npy']);
      const a = readNpy(entries[0]!.data, LIMITS);
      assert.deepEqual(a.header.shape, expected.npz.a.shape);
      assert.deepEqual(a.data, Float32Array.from(expected.npz.a.values));
      // numpy's member .npy is byte-identical to what encodeNpy writes for the same array.
      const b = expected.npz.b;
      assert.deepEqual(entries[1]!.data, encodeNpy(Int16Array.from(b.values), b.descr, b.shape));
    });
  }
});

describe('encodeNpz', () => {
  it('round trips through decodeNpz, including JSON and non-ASCII names', () => {
    const decoded = decodeNpz(encodeNpz(sample));
    assert.deepEqual(decoded.map((e) => e.name), sample.map((e) => e.name));
    decoded.forEach((e, i) => assert.deepEqual(e.data, sample[i]!.data));
  });

  it('is deterministic and lays out local headers, directory and end record as zip expects', () => {
    const zip = encodeNpz(sample);
    assert.deepEqual(zip, encodeNpz(sample));
    const view = new DataView(zip.buffer);
    assert.equal(view.getUint32(0, true), 0x04034b50);
    assert.equal(view.getUint16(8, true), 0, 'STORED');
    assert.equal(view.getUint16(10, true), 0, 'time 00:00:00');
    assert.equal(view.getUint16(12, true), 0x21, 'date 1980-01-01');
    assert.equal(view.getUint32(14, true), crc32(sample[0]!.data));
    assert.equal(view.getUint32(zip.length - 22, true), 0x06054b50);
    assert.equal(view.getUint16(zip.length - 22 + 10, true), sample.length);
    const headers = sample.reduce((s, e) => s + 30 + bytes(e.name).length + e.data.length, 0);
    assert.equal(cdOffsetOf(zip), headers);
    assert.equal(zip.length, headers + sample.reduce((s, e) => s + 46 + bytes(e.name).length, 0) + 22);
  });

  it('writes zip64 records that decodeNpz follows', () => {
    const zip = encodeNpz(sample, { forceZip64: true });
    const view = new DataView(zip.buffer);
    assert.equal(view.getUint32(zip.length - 22 - 20, true), 0x07064b50, 'zip64 locator before the end record');
    assert.equal(view.getUint32(zip.length - 22 + 16, true), 0xffffffff);
    const decoded = decodeNpz(zip);
    assert.deepEqual(decoded.map((e) => e.name), sample.map((e) => e.name));
    decoded.forEach((e, i) => assert.deepEqual(e.data, sample[i]!.data));
  });

  it('round trips arbitrary entries (property)', () => {
    const entry = fc.record({ name: fc.string({ minLength: 1, maxLength: 20, unit: 'grapheme' }), data: fc.uint8Array({ maxLength: 300 }) });
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 6 }), fc.boolean(), (entries, zip64) => {
        const decoded = decodeNpz(encodeNpz(entries, { forceZip64: zip64 }));
        assert.deepEqual(
          decoded.map((e) => [e.name, Array.from(e.data)]),
          entries.map((e) => [e.name, Array.from(e.data)]),
        );
      }),
      { numRuns: 200 },
    );
  });
});

describe('decodeNpz refuses bad archives', () => {
  const zip = encodeNpz(sample);

  it('empty, non-zip and truncated input', () => {
    npzError(() => decodeNpz(new Uint8Array(0)), 'NPZ is not a zip archive: 0 bytes is shorter than the end-of-central-directory record');
    npzError(() => decodeNpz(fixture('f32_c_2d.npy')), 'NPZ is not a zip archive: no end-of-central-directory record found');
    npzError(() => decodeNpz(zip.subarray(0, zip.length - 5)), /no end-of-central-directory record/);
    // Keep the end record but lose the front of the file.
    npzError(() => decodeNpz(zip.subarray(100)), /central directory .* runs past its end record/);
  });

  it('a corrupted entry (CRC-32 mismatch)', () => {
    const bad = zip.slice();
    bad[30 + 'quantized.npy'.length + 5]! ^= 0xff;
    npzError(() => decodeNpz(bad), /^NPZ entry 'quantized.npy' fails its CRC-32 check: stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}$/);
  });

  it('an unsupported compression method', () => {
    const bad = zip.slice();
    new DataView(bad.buffer).setUint16(cdOffsetOf(bad) + 10, 12, true);
    npzError(() => decodeNpz(bad), "NPZ entry 'quantized.npy' uses compression method 12; only stored (0) and deflate (8) are supported");
  });

  it('entries over maxEntryBytes, stored or deflated', () => {
    npzError(() => decodeNpz(zip, 100), "NPZ entry 'quantized.npy' declares 134 bytes; the limit is 100");
    npzError(() => decodeNpz(fixture('savez_compressed.npz'), 100), "NPZ entry 'a.npy' declares 152 bytes; the limit is 100");
  });

  it('a deflate entry that inflates past its declared size', () => {
    const bad = fixture('savez_compressed.npz').slice();
    new DataView(bad.buffer).setUint32(cdOffsetOf(bad) + 24, 10, true);
    npzError(() => decodeNpz(bad), "NPZ entry 'a.npy' inflates to more than the 10 bytes it declares");
  });

  it('a size field that runs past the archive data', () => {
    const bad = zip.slice();
    const view = new DataView(bad.buffer);
    view.setUint32(cdOffsetOf(bad) + 20, 100000, true);
    view.setUint32(cdOffsetOf(bad) + 24, 100000, true);
    npzError(() => decodeNpz(bad), /entry 'quantized.npy' is truncated: 100000 bytes of data at offset 43 run past the archive data/);
  });

  it('two directory entries sharing one local entry (overlap bomb)', () => {
    const bad = zip.slice();
    const view = new DataView(bad.buffer);
    const second = cdOffsetOf(bad) + 46 + 'quantized.npy'.length;
    view.setUint32(second + 42, 0, true);
    npzError(() => decodeNpz(bad), /entry '.*' overlaps the entry before it/);
  });

  it('an entry count larger than the directory could hold', () => {
    const bad = zip.slice();
    new DataView(bad.buffer).setUint16(bad.length - 22 + 10, 5000, true);
    npzError(() => decodeNpz(bad), /declares 5000 entries but its central directory holds only \d+ bytes/);
  });

  it('fuzzing: random mutations only ever throw QUANT_ERR_* errors', () => {
    const archives = [zip, encodeNpz(sample, { forceZip64: true }), fixture('savez_compressed.npz'), fixture('savez.npz')];
    fc.assert(
      fc.property(
        fc.constantFrom(...archives),
        fc.array(fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }), nearEnd: fc.boolean() }), {
          minLength: 1,
          maxLength: 8,
        }),
        fc.option(fc.nat()),
        (archive, edits, cut) => {
          const mutated = archive.slice(0, cut === null ? archive.length : cut % (archive.length + 1));
          // Half the edits hit the directory and end records at the back of the file.
          for (const { at, byte, nearEnd } of edits) {
            if (!mutated.length) break;
            mutated[nearEnd ? mutated.length - 1 - (at % Math.min(mutated.length, 250)) : at % mutated.length] = byte;
          }
          try {
            decodeNpz(mutated, 1 << 20);
          } catch (err) {
            const code = (err as { code?: unknown }).code;
            if (typeof code !== 'string' || !code.startsWith('QUANT_ERR_')) throw err;
          }
        },
      ),
      { numRuns: 3000 },
    );
  });
});

import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { crc32 } from '../../../src/codecs/crc32.js';
import { decodeNpz } from '../../../src/codecs/npz.js';
import { zipStream } from '../../../src/onnx/io/zip-stream.js';

async function collect(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

describe('zipStream', () => {
  it('streams a zip64 archive of exactly the announced length that a reader accepts (CRCs checked)', async () => {
    const files = [
      { name: 'model.4bit.onnx', data: Buffer.from('onnx bytes') },
      { name: 'model.4bit.onnx.data', data: Buffer.alloc(100_000, 7) },
      { name: 'empty', data: Buffer.alloc(0) },
    ];
    const zip = zipStream(files.map((f) => ({ name: f.name, size: f.data.length, crc: crc32(f.data), open: () => Readable.from([f.data.subarray(0, 10), f.data.subarray(10)]) })));
    const bytes = await collect(zip.stream());
    assert.equal(bytes.length, zip.length);
    const entries = decodeNpz(bytes);
    assert.deepEqual(entries.map((e) => e.name), files.map((f) => f.name));
    entries.forEach((e, i) => assert.deepEqual(Buffer.from(e.data), files[i]!.data));
  });

  it('writes the CRC it is given: a wrong one is caught by the reader', async () => {
    const data = Buffer.from('abc');
    const zip = zipStream([{ name: 'a', size: 3, crc: crc32(data) ^ 1, open: () => Readable.from([data]) }]);
    const bytes = await collect(zip.stream());
    assert.throws(() => decodeNpz(bytes), /CRC-32/);
  });
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import request from 'supertest';
import { encodeNpy } from '../../src/codecs/npy.js';
import { portOf, testApp } from './helpers.js';
import { openSocket, postHead, readResponse } from './raw-http.js';

// tensor-body.ts copies a binary body chunk by chunk into one buffer: sized from
// Content-Length (a kernel arena from 1 MiB on), or grown as a chunked body arrives. However
// the bytes are split on the wire, the tensor the worker reads must be the one sent.

const app = await testApp();
const port = portOf(app);
const path = '/v1/quantize?bits=8&granularity=per_channel&axis=0';

function tensorNpy(rows: number, cols: number): Buffer {
  const x = new Float32Array(rows * cols);
  let seed = 7;
  for (let i = 0; i < x.length; i++) x[i] = ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5) * (1 + (i % cols));
  return Buffer.from(encodeNpy(x, '<f4', [rows, cols]));
}

/** Sends body over a raw socket in pieces of `piece` bytes (chunk-framed when `chunked`). */
async function sendInPieces(body: Buffer, piece: number, chunked: boolean) {
  const socket = await openSocket(port);
  try {
    const headers: Record<string, string | number> = chunked ? { 'content-type': 'application/x-npy', 'transfer-encoding': 'chunked' } : { 'content-type': 'application/x-npy', 'content-length': body.length };
    const response = readResponse(socket);
    socket.write(postHead(path, { ...headers, connection: 'close' }));
    for (let at = 0; at < body.length; at += piece) {
      const part = body.subarray(at, at + piece);
      const framed = chunked ? Buffer.concat([Buffer.from(`${part.length.toString(16)}\r\n`), part, Buffer.from('\r\n')]) : part;
      await new Promise<void>((resolve) => socket.write(framed, () => resolve()));
    }
    if (chunked) socket.write('0\r\n\r\n');
    return await response;
  } finally {
    socket.destroy();
  }
}

for (const [name, rows, cols] of [
  ['a body under 1 MiB (a plain buffer)', 64, 1000],
  ['a body over 1 MiB (a kernel arena)', 300, 1200],
] as const) {
  test(`${name} reads the same in any pieces, sized or chunked`, async () => {
    const body = tensorNpy(rows, cols);
    const whole = await request(app.server).post(path).set('content-type', 'application/x-npy').send(body);
    assert.equal(whole.status, 200, whole.text);
    const expected = JSON.parse(whole.text) as { shape: number[]; scale: unknown; quantized: unknown; report: unknown };
    assert.deepEqual(expected.shape, [rows, cols]);
    for (const piece of [1, 4093, 65536, 200_001]) {
      for (const chunked of [false, true]) {
        if (piece === 1 && body.length > 100_000) continue; // a byte at a time: kept to the small body
        const r = await sendInPieces(body, piece, chunked);
        assert.equal(r.status, 200, `${piece}-byte pieces, chunked=${chunked}: ${r.body.slice(0, 300)}`);
        const got = JSON.parse(r.body) as typeof expected;
        assert.deepEqual([got.scale, got.quantized, got.report], [expected.scale, expected.quantized, expected.report], `${piece}-byte pieces, chunked=${chunked}`);
      }
    }
  });
}

test('bytes past Content-Length are not read into the tensor', async () => {
  const body = tensorNpy(8, 100);
  const long = await openSocket(port);
  const answer = readResponse(long);
  long.write(postHead(path, { 'content-type': 'application/x-npy', 'content-length': body.length - 10, connection: 'close' }));
  long.write(body);
  const r = await answer;
  long.destroy();
  // The first Content-Length bytes are a truncated NPY: a 400 naming it, not a tensor read past its end.
  assert.equal(r.status, 400, r.body);
});

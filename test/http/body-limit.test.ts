import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import request from 'supertest';
import { portOf, testApp } from './helpers.js';
import { openSocket, postHead, readResponse, type RawResponse } from './raw-http.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const app = await testApp({ bodyLimit: 64 * KiB, modelBodyLimit: 1 * MiB });
const port = portOf(app);
const server = () => request(app.server);

async function stillServing() {
  const ok = await server().post('/v1/quantize').send({ tensor: { data: [1, 2, 3] } });
  assert.equal(ok.status, 200);
}

function assertTooLarge(res: RawResponse, limit: number, name: string) {
  assert.equal(res.status, 413, res.body);
  const body = JSON.parse(res.body);
  assert.equal(body.code, 'QUANT_ERR_BODY_TOO_LARGE');
  assert.match(body.message, new RegExp(`limit of ${limit} bytes \\(${name}\\)`));
}

/**
 * Streams a chunked body until the server answers, never sending the final chunk: an answer
 * can only come from a server that refused the body part way. Returns it and the bytes sent.
 */
async function chunkedUntilAnswered(socket: Socket, path: string, type: string, maxBytes: number) {
  socket.write(postHead(path, { 'content-type': type, 'transfer-encoding': 'chunked' }));
  let answered = false;
  const response = readResponse(socket).then((r) => {
    answered = true;
    return r;
  });
  const chunk = Buffer.alloc(16 * KiB, 0x20);
  const framed = Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]);
  let sent = 0;
  // One framed chunk at a time with a pause between, so the answer is read before the next
  // write could hit the closed connection.
  while (!answered && sent < maxBytes && !socket.destroyed) {
    await new Promise<void>((resolve) => socket.write(framed, () => resolve()));
    sent += chunk.length;
    await new Promise((r) => setTimeout(r, 1));
  }
  return { response: await response, sent };
}

test('a Content-Length over BODY_LIMIT is refused from the headers alone, before any body byte is sent', async () => {
  for (const [type, path] of [
    ['application/octet-stream', '/v1/quantize?shape=100'],
    ['application/x-npy', '/v1/quantize'],
    ['application/json', '/v1/quantize'],
    ['application/json', '/v1/analyze'],
  ]) {
    const socket = await openSocket(port);
    // 10 GiB declared, nothing sent: only a server that decides on the header can answer.
    socket.write(postHead(path!, { 'content-type': type!, 'content-length': 10 * 1024 * MiB }));
    const res = await readResponse(socket);
    assertTooLarge(res, 64 * KiB, 'BODY_LIMIT');
    assert.equal(res.headers.connection, 'close', 'the connection is dropped rather than drained');
    socket.destroy();
  }
  await stillServing();
});

test('a chunked body is cut off once it passes BODY_LIMIT, without waiting for the rest', async () => {
  for (const type of ['application/octet-stream', 'application/json']) {
    const socket = await openSocket(port);
    const { response, sent } = await chunkedUntilAnswered(socket, '/v1/quantize?shape=100', type, 256 * MiB);
    assertTooLarge(response, 64 * KiB, 'BODY_LIMIT');
    // The client paces its chunks, so it can only be a few chunks ahead of the refusal.
    assert.ok(sent < 16 * 64 * KiB, `${sent} bytes went out before the server refused a 64 KiB limit`);
    socket.destroy();
  }
  await stillServing();
});

test('model routes take MODEL_BODY_LIMIT instead: a body over BODY_LIMIT passes, one over MODEL_BODY_LIMIT does not', async () => {
  const model = Buffer.alloc(256 * KiB, 7);
  const tensor = await server().post('/v1/quantize?shape=65536').set('content-type', 'application/octet-stream').send(model);
  assert.equal(tensor.status, 413);
  assert.match(tensor.body.message, /\(BODY_LIMIT\)/);
  const upload = await server().post('/v1/models/quantize').set('content-type', 'application/octet-stream').send(model);
  assert.notEqual(upload.status, 413, 'a 256 KiB model was refused under a 1 MiB MODEL_BODY_LIMIT');
  assert.ok(upload.status < 500, JSON.stringify(upload.body));

  const socket = await openSocket(port);
  socket.write(postHead('/v1/models/quantize', { 'content-type': 'application/octet-stream', 'content-length': 2 * MiB }));
  assertTooLarge(await readResponse(socket), 1 * MiB, 'MODEL_BODY_LIMIT');
  socket.destroy();
  const chunked = await openSocket(port);
  const { response } = await chunkedUntilAnswered(chunked, '/v1/models/quantize', 'application/octet-stream', 256 * MiB);
  assertTooLarge(response, 1 * MiB, 'MODEL_BODY_LIMIT');
  chunked.destroy();
  await stillServing();
});

test('MODEL_BODY_LIMIT is exposed as app.config.modelBodyLimit and defaults to 2 GiB', async () => {
  const { loadConfig } = await import('../../src/config.js');
  assert.equal(loadConfig({}).modelBodyLimit, 2 * 1024 * MiB);
  assert.equal(loadConfig({ MODEL_BODY_LIMIT: '1000' }).modelBodyLimit, 1000);
  assert.equal(app.config.modelBodyLimit, 1 * MiB);
});

import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { S3Objects } from '../../src/jobs/s3-objects.js';
import { sleep, topology } from './topology.js';

// The object-store layer against s3rver, or against a real bucket when S3_TEST_ENDPOINT is
// set (with S3_TEST_BUCKET, S3_TEST_ACCESS_KEY_ID, S3_TEST_SECRET_ACCESS_KEY, S3_TEST_REGION).
// Where s3rver is laxer than S3, a green run here proves less: it does not enforce the 5 MiB
// minimum part size, part ETags on completion or checksums, and it cannot list or abort
// multipart uploads (aborted parts stay on its disk); run against a real bucket for those.

const t = await topology();
const e = t.env;
const MiB = 1 << 20;
const objects = new S3Objects({
  endpoint: e.S3_ENDPOINT,
  region: e.S3_REGION ?? 'us-east-1',
  bucket: e.S3_BUCKET!,
  accessKeyId: e.S3_ACCESS_KEY_ID,
  secretAccessKey: e.S3_SECRET_ACCESS_KEY,
  forcePathStyle: e.S3_FORCE_PATH_STYLE === 'true',
  partSize: 5 * MiB,
  uploadQueue: 2,
});
const prefix = `test-${randomUUID()}/`;
console.log(`object store under test: ${process.env.S3_TEST_ENDPOINT ? process.env.S3_TEST_ENDPOINT : 's3rver (laxer than S3, see the comment above)'}`);

/** `n` bytes of a seeded pattern, in chunks of odd sizes (never aligned with parts). */
function pattern(n: number): { stream: Readable; sha: string } {
  const hash = createHash('sha256');
  const chunks: Buffer[] = [];
  let left = n;
  let seed = 7;
  while (left > 0) {
    const size = Math.min(left, 777_777);
    const c = Buffer.alloc(size);
    for (let i = 0; i < size; i += 4096) c[i] = seed = (seed * 31 + 11) & 255;
    hash.update(c);
    chunks.push(c);
    left -= size;
  }
  return { stream: Readable.from(chunks), sha: hash.digest('hex') };
}

async function sha(key: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const c of await objects.reader(key)) hash.update(c as Buffer);
  return hash.digest('hex');
}

describe('object store (S3 API)', () => {
  it('streams a multipart upload (4+ parts) and reads it back byte for byte', async () => {
    const { stream, sha: expected } = pattern(21 * MiB + 12345);
    await pipeline(stream, objects.writer(`${prefix}big.bin`));
    assert.equal(await sha(`${prefix}big.bin`), expected);
    const [info] = await objects.list(`${prefix}big.bin`);
    assert.equal(info!.size, 21 * MiB + 12345);
  });

  it('puts a single-part object through the same writer', async () => {
    const { stream, sha: expected } = pattern(1000);
    await pipeline(stream, objects.writer(`${prefix}small.bin`));
    assert.equal(await sha(`${prefix}small.bin`), expected);
  });

  it('stores JSON and tells a missing key from an error', async () => {
    await objects.putJson(`${prefix}a.json`, { x: 1 });
    assert.deepEqual(await objects.getJson(`${prefix}a.json`), { x: 1 });
    assert.equal(await objects.getJson(`${prefix}nothing.json`), undefined);
  });

  it('signs a GET URL that downloads the object under the given name', async () => {
    await objects.putJson(`${prefix}r.json`, { y: 2 });
    const res = await fetch(await objects.signedUrl(`${prefix}r.json`, 'model.4bit.onnx', 60));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-disposition'), 'attachment; filename="model.4bit.onnx"');
    assert.deepEqual(await res.json(), { y: 2 });
  });

  it('fails the writer when its source fails, leaving no object', async () => {
    const failing = new Readable({
      read() {
        this.destroy(new Error('client went away'));
      },
    });
    await assert.rejects(pipeline(failing, objects.writer(`${prefix}never.bin`)), /client went away/);
    assert.equal((await objects.list(`${prefix}never.bin`)).length, 0);
  });

  it('deletes everything under a prefix', async () => {
    await objects.deletePrefix(prefix);
    assert.deepEqual(await objects.list(prefix), []);
    objects.close();
  });
});

// The hang seen before: when S3 went away mid-upload, lib-storage's Upload failed and stopped
// reading its body, a write waiting for the body to drain never returned, and the upload's
// pipeline (so the request) never ended. Now the writer errors as soon as the upload fails.
describe('object store going away mid-upload', { skip: process.env.S3_TEST_ENDPOINT ? 'needs the test-started s3rver to kill' : false }, () => {
  it('fails the writer within a bounded time, holds no sockets after, and works again once S3 is back', async () => {
    const s3 = new S3Objects({ endpoint: e.S3_ENDPOINT, region: 'us-east-1', bucket: e.S3_BUCKET!, accessKeyId: e.S3_ACCESS_KEY_ID, secretAccessKey: e.S3_SECRET_ACCESS_KEY, forcePathStyle: true, partSize: 8 * MiB, uploadQueue: 4 });
    const sockets = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'ConnectWrap').length;
    const before = sockets();
    const chunk = Buffer.alloc(MiB, 1);
    let sent = 0;
    let killed: Promise<void> | undefined;
    const source = Readable.from(
      (function* () {
        for (; sent < 1024; sent++) {
          if (sent === 40) killed = t.s3.kill();
          yield chunk;
        }
      })(),
    );
    const began = Date.now();
    const outcome = await Promise.race([
      pipeline(source, s3.writer(`${prefix}cut.bin`, (err) => new Error(`object store: ${(err as Error).message}`))).then(
        () => 'finished',
        (err: Error) => err.message,
      ),
      sleep(60_000).then(() => 'still pending after 60 s'),
    ]);
    await killed;
    console.log(`writer ended ${Date.now() - began} ms after it began, ${sent} MiB read from the source: ${outcome}`);
    assert.match(outcome, /^object store: /);
    assert.ok(sent < 100, `the source was read on (${sent} MiB) after the upload failed`);
    assert.ok(source.destroyed, 'the source is destroyed');
    await sleep(3000);
    assert.ok(sockets() <= before, `sockets open: ${sockets()} (before: ${before})`);
    await t.s3.start();
    const { stream, sha: expected } = pattern(17 * MiB);
    await pipeline(stream, s3.writer(`${prefix}after.bin`));
    const hash = createHash('sha256');
    for await (const c of await s3.reader(`${prefix}after.bin`)) hash.update(c as Buffer);
    assert.equal(hash.digest('hex'), expected);
    s3.close();
  });
});

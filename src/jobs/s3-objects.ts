import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { PassThrough, type Readable, Writable } from 'node:stream';
import type { ScaleConfig } from '../config.js';

// The object store of the shared job store: a thin layer over the AWS SDK so that the same
// calls work on AWS, MinIO, Ceph and the test server. Transfers stream: an upload holds at
// most partSize × queueSize bytes (lib-storage's Upload), a download none.

/** Tries per S3 request (the SDK's retries, with its backoff), before a transfer fails. */
const MAX_ATTEMPTS = 5;

export interface ObjectInfo {
  key: string;
  size: number;
  lastModified: number;
}

export class S3Objects {
  readonly client: S3Client;
  readonly #bucket: string;
  readonly #partSize: number;
  readonly #queueSize: number;

  constructor(s3: ScaleConfig['s3']) {
    const config: S3ClientConfig = {
      region: s3.region,
      forcePathStyle: s3.forcePathStyle,
      // SDK ≥ 3.729 adds CRC32 checksums to every upload and checks them on downloads; many
      // S3-compatible servers reject or mangle those (aws-sdk-js-v3 #6810), so only when required.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: MAX_ATTEMPTS,
      // A store that stops answering must fail the transfer (then 503 or a retried job), not hang it.
      requestHandler: { connectionTimeout: 5000, requestTimeout: 30_000 },
    };
    if (s3.endpoint) config.endpoint = s3.endpoint;
    if (s3.accessKeyId && s3.secretAccessKey) config.credentials = { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
    this.client = new S3Client(config);
    this.#bucket = s3.bucket;
    this.#partSize = s3.partSize;
    this.#queueSize = s3.uploadQueue;
  }

  /**
   * A stream that uploads what is written to it as `key` (multipart past one part); it
   * finishes only once the object is complete, and destroying it aborts the upload. When the
   * upload fails (S3 gone: each request fails after at most MAX_ATTEMPTS tries, each
   * bounded by the connection and idle timeouts) the stream errors at once, even with a
   * write waiting for room: the caller's pipeline then fails instead of waiting forever.
   */
  writer(key: string, mapError: (err: unknown) => Error = (err) => err as Error): Writable {
    const body = new PassThrough({ highWaterMark: 1 << 20 });
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.#bucket, Key: key, Body: body },
      partSize: this.#partSize,
      queueSize: this.#queueSize,
      // A failed part must fail the upload, never be skipped silently (aws-sdk-js-v3 #2311).
      leavePartsOnError: false,
    });
    const done = upload.done();
    let failure: Error | undefined;
    // A write waiting for the body to drain: a failed upload stops reading the body, and a
    // destroyed PassThrough never emits 'drain', so the failure must settle it.
    let waiting: ((err?: Error | null) => void) | undefined;
    const settle = (err?: Error) => {
      const cb = waiting;
      waiting = undefined;
      cb?.(err);
    };
    body.on('drain', () => settle());
    // Observed here so that a failure before final() is not an unhandled rejection.
    done.catch((err: unknown) => {
      failure = mapError(err);
      body.destroy();
      settle(failure);
    });
    return new Writable({
      highWaterMark: 1 << 20,
      write(chunk: Buffer, _enc, cb) {
        if (failure) return cb(failure);
        if (body.write(chunk)) cb();
        else waiting = cb;
      },
      final(cb) {
        if (failure) return cb(failure);
        body.end();
        done.then(
          () => cb(),
          (err: unknown) => cb(failure ?? mapError(err)),
        );
      },
      destroy(err, cb) {
        // Destroyed before the end (the client went away, the upload was refused): no object.
        if (err || !body.writableFinished) {
          void upload.abort().catch(() => undefined);
          body.destroy();
        }
        settle(err ?? undefined);
        cb(err);
      },
    });
  }

  async putFile(key: string, source: Readable): Promise<void> {
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.#bucket, Key: key, Body: source },
      partSize: this.#partSize,
      queueSize: this.#queueSize,
      leavePartsOnError: false,
    });
    await upload.done();
  }

  async putJson(key: string, value: unknown): Promise<void> {
    await this.client.send(new PutObjectCommand({ Bucket: this.#bucket, Key: key, Body: JSON.stringify(value), ContentType: 'application/json' }));
  }

  async reader(key: string): Promise<Readable> {
    const res = await this.client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: key }));
    return res.Body as Readable;
  }

  /** The object as JSON, or undefined when there is none. */
  async getJson(key: string): Promise<unknown> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: key }));
      return JSON.parse(await res.Body!.transformToString());
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  /** A time-limited GET URL that downloads the object as `filename`. */
  async signedUrl(key: string, filename: string, expiresIn: number): Promise<string> {
    const command = new GetObjectCommand({ Bucket: this.#bucket, Key: key, ResponseContentDisposition: `attachment; filename="${filename}"` });
    return getSignedUrl(this.client, command, { expiresIn });
  }

  async list(prefix: string, maxKeys = 100_000): Promise<ObjectInfo[]> {
    const out: ObjectInfo[] = [];
    let token: string | undefined;
    do {
      const res = await this.client.send(new ListObjectsV2Command({ Bucket: this.#bucket, Prefix: prefix, ContinuationToken: token }));
      for (const o of res.Contents ?? []) out.push({ key: o.Key!, size: o.Size ?? 0, lastModified: o.LastModified?.getTime() ?? 0 });
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token && out.length < maxKeys);
    return out;
  }

  async delete(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: key }));
  }

  /** Deletes every object under `prefix` (one request each: DeleteObjects is not everywhere). */
  async deletePrefix(prefix: string): Promise<void> {
    const keys = (await this.list(prefix)).map((o) => o.key);
    for (let i = 0; i < keys.length; i += 16) await Promise.all(keys.slice(i, i + 16).map((k) => this.delete(k)));
  }

  close(): void {
    this.client.destroy();
  }
}

export function isMissing(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.$metadata?.httpStatusCode === 404;
}


import type { FastifyInstance } from 'fastify';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { Writable } from 'node:stream';
import type request from 'supertest';
import { loadConfig, type Config } from '../../src/config.js';
import { buildApp, type AppOptions } from '../../src/http/app.js';
import { loggerOptions } from '../../src/http/logger.js';

export type TestAppOptions = Omit<AppOptions, 'config'> & { logger?: Parameters<typeof buildApp>[0]['logger'] };

/** An app on an ephemeral port for supertest; closed when the test file ends. */
export async function testApp(overrides: Partial<Config> = {}, options: TestAppOptions = {}): Promise<FastifyInstance> {
  // Each app gets its own job store, so apps never pick up each other's (or old) jobs.
  const jobsDir = overrides.jobsDir ?? mkdtempSync(join(tmpdir(), 'quantd-test-jobs-'));
  const config = { ...loadConfig({}), workers: 2, jobsDir, ...overrides };
  const app = await buildApp({ logger: false, ...options, config });
  await app.listen({ port: 0, host: '127.0.0.1' });
  after(async () => {
    await app.close();
    if (!overrides.jobsDir) rmSync(jobsDir, { recursive: true, force: true });
  });
  return app;
}

export interface LogCapture {
  /** The service's own pino options, writing here. */
  logger: TestAppOptions['logger'];
  lines: () => Array<Record<string, unknown>>;
  text: () => string;
}

/** Collects what the service logs, with its production logger settings (redaction included). */
export function captureLogs(level: Config['logLevel'] = 'info'): LogCapture {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  const text = () => chunks.join('');
  return {
    logger: { ...loggerOptions({ logLevel: level }), stream },
    text,
    lines: () => text().split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

/** The port an app listens on. */
export function portOf(app: FastifyInstance): number {
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('the app is not listening on TCP');
  return address.port;
}

export function f32Base64(values: number[]): string {
  return Buffer.from(new Float32Array(values).buffer).toString('base64');
}

export function decodeF32(b64: string): Float32Array {
  const buf = Buffer.from(b64, 'base64');
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

/** supertest's binary parser: collects the body as a Buffer. */
export function binaryParser(res: request.Response, cb: (err: Error | null, body: unknown) => void): void {
  const stream = res as unknown as NodeJS.ReadableStream;
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  stream.on('end', () => cb(null, Buffer.concat(chunks)));
}

/** Deterministic pseudo-Gaussian values (Box-Muller on a small LCG). */
export function gaussian(n: number, seed = 1, scale = 1): number[] {
  let s = seed >>> 0;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 1) / 4294967297;
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(Math.fround(Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()) * scale));
  return out;
}

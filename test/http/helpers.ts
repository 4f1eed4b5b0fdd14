import type { FastifyInstance } from 'fastify';
import { after } from 'node:test';
import type request from 'supertest';
import { loadConfig, type Config } from '../../src/config.js';
import { buildApp } from '../../src/http/app.js';

/** An app on an ephemeral port for supertest; closed when the test file ends. */
export async function testApp(overrides: Partial<Config> = {}): Promise<FastifyInstance> {
  const config = { ...loadConfig({}), workers: 2, ...overrides };
  const app = await buildApp({ config, logger: false });
  await app.listen({ port: 0, host: '127.0.0.1' });
  after(() => app.close());
  return app;
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

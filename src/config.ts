import { availableParallelism } from 'node:os';
import { z } from 'zod';

const MiB = 1024 * 1024;

const int = (def: number, min = 0) => z.coerce.number().int().min(min).default(def);

// Every setting, its environment variable and its default, in one place (the README's
// configuration table lists the same).
const ConfigSchema = z.object({
  PORT: int(8080).pipe(z.number().max(65535)),
  HOST: z.string().min(1).default('0.0.0.0'),
  WORKERS: int(availableParallelism(), 1),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  BODY_LIMIT: int(256 * MiB, 1),
  MAX_ELEMENTS: int(64 * MiB, 1),
  MAX_DIMS: int(8, 1),
  MAX_MATMUL_MACS: int(2 ** 31, 1),
  MAX_QUEUE: int(64, 0),
  REQUEST_TIMEOUT_MS: int(120_000, 1),
  SHUTDOWN_TIMEOUT_MS: int(30_000, 1),
});

export type EnvConfig = z.infer<typeof ConfigSchema>;

export interface Config {
  port: number;
  host: string;
  workers: number;
  logLevel: EnvConfig['LOG_LEVEL'];
  bodyLimit: number;
  maxElements: number;
  maxDims: number;
  maxMatmulMacs: number;
  maxQueue: number;
  requestTimeoutMs: number;
  shutdownTimeoutMs: number;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const known = Object.fromEntries(Object.keys(ConfigSchema.shape).filter((k) => env[k] !== undefined && env[k] !== '').map((k) => [k, env[k]]));
  const parsed = ConfigSchema.safeParse(known);
  if (!parsed.success) {
    const detail = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new Error(`invalid configuration: ${detail}`);
  }
  const c = parsed.data;
  return {
    port: c.PORT,
    host: c.HOST,
    workers: c.WORKERS,
    logLevel: c.LOG_LEVEL,
    bodyLimit: c.BODY_LIMIT,
    maxElements: c.MAX_ELEMENTS,
    maxDims: c.MAX_DIMS,
    maxMatmulMacs: c.MAX_MATMUL_MACS,
    maxQueue: c.MAX_QUEUE,
    requestTimeoutMs: c.REQUEST_TIMEOUT_MS,
    shutdownTimeoutMs: c.SHUTDOWN_TIMEOUT_MS,
  };
}

import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { getHeapStatistics } from 'node:v8';
import { z } from 'zod';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

const int = (def: number, min = 0) => z.coerce.number().int().min(min).default(def);

const bool = (def: boolean) => z.enum(['true', 'false']).default(def ? 'true' : 'false').transform((v) => v === 'true');

// Keys shorter than this are guessable by brute force over the network.
const MIN_API_KEY_LENGTH = 16;

const apiKeys = z
  .string()
  .default('')
  .transform((s) => s.split(',').map((k) => k.trim()).filter((k) => k !== ''))
  .refine((keys) => keys.every((k) => k.length >= MIN_API_KEY_LENGTH), `every key must be at least ${MIN_API_KEY_LENGTH} characters`);

// Every setting, its environment variable and its default, in one place (the README's
// configuration table lists the same).
const ConfigSchema = z.object({
  PORT: int(8080).pipe(z.number().max(65535)),
  HOST: z.string().min(1).default('0.0.0.0'),
  WORKERS: int(availableParallelism(), 1),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  BODY_LIMIT: int(256 * MiB, 1),
  ARENA_CACHE_BYTES: int(512 * MiB, 0),
  MODEL_BODY_LIMIT: int(2 * GiB, 1),
  JOBS_DIR: z.string().min(1).default(join(tmpdir(), 'quantd-jobs')),
  JOBS_TTL_S: int(3600, 1),
  JOBS_MAX_BYTES: int(20 * GiB, 1),
  JOBS_CONCURRENCY: int(1, 1),
  MAX_ELEMENTS: int(64 * MiB, 1),
  MAX_DIMS: int(8, 1),
  MAX_MATMUL_MACS: int(2 ** 31, 1),
  DATA_AWARE_MAX_MACS: int(2 ** 36, 1),
  MAX_JSON_REPLY_BYTES: int(256 * MiB, 1024),
  MAX_QUEUE: int(64, 0),
  REQUEST_TIMEOUT_MS: int(120_000, 1),
  SHUTDOWN_TIMEOUT_MS: int(30_000, 1),
  // 0 turns a guard off. The heap guard defaults to 90% of V8's limit: past it a request
  // that parses a large JSON body would crash the process instead of getting a 503.
  MAX_EVENT_LOOP_DELAY_MS: int(1000, 0),
  MAX_HEAP_USED_BYTES: int(Math.floor(getHeapStatistics().heap_size_limit * 0.9), 0),
  API_KEYS: apiKeys,
  RATE_LIMIT_MAX: int(0, 0),
  METRICS_TOKEN: z.string().min(MIN_API_KEY_LENGTH, `must be at least ${MIN_API_KEY_LENGTH} characters`).optional(),
  CALIBRATION_MAX_BYTES: int(GiB, 1),
  CALIBRATION_MAX_SAMPLES: int(4096, 1),
  HESSIAN_MAX_BYTES: int(512 * MiB, 1),
  // Scale-out (README "Scaling out"): jobs in Redis (BullMQ) and S3 instead of JOBS_DIR.
  JOBS_STORE: z.enum(['local', 'redis']).default('local'),
  ROLE: z.enum(['all', 'api', 'worker']).default('all'),
  REDIS_URL: z.string().min(1).default('redis://127.0.0.1:6379'),
  S3_ENDPOINT: z.string().url().optional(),
  S3_REGION: z.string().min(1).default('us-east-1'),
  S3_BUCKET: z.string().min(1).optional(),
  S3_ACCESS_KEY_ID: z.string().min(1).optional(),
  S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  S3_FORCE_PATH_STYLE: bool(false),
  S3_PART_SIZE: int(16 * MiB, 5 * MiB),
  S3_UPLOAD_QUEUE: int(4, 1),
  JOBS_LOCK_MS: int(30_000, 1000),
  JOBS_STALLED_INTERVAL_MS: int(30_000, 1000),
  JOBS_ATTEMPTS: int(3, 1),
  JOBS_RESULT_REDIRECT: bool(false),
});

export type EnvConfig = z.infer<typeof ConfigSchema>;

/** Every environment variable the service reads (the CLI's `serve` takes them as flags too). */
export const CONFIG_VARIABLES = Object.keys(ConfigSchema.shape);

export interface Config {
  port: number;
  host: string;
  workers: number;
  logLevel: EnvConfig['LOG_LEVEL'];
  bodyLimit: number;
  /** Idle kernel arenas kept for the next big tensor bodies (http/arena-pool.ts); 0 = none. */
  arenaCacheBytes: number;
  /** Body limit for routes that take a whole model; set it as such a route's `bodyLimit`. */
  modelBodyLimit: number;
  /** Where jobs keep their uploads and results. */
  jobsDir: string;
  jobsTtlS: number;
  /** Bound on the bytes all jobs hold on disk (uploads and results). */
  jobsMaxBytes: number;
  /** Jobs run at once (each takes one worker). */
  jobsConcurrency: number;
  maxElements: number;
  maxDims: number;
  maxMatmulMacs: number;
  /** Most multiply-adds one tensor request with method=imatrix|gptq may cost (XᵀX, GPTQ, the output-error measure). */
  dataAwareMaxMacs: number;
  /** Most text a JSON reply may build (V8 caps one string near 2^29 characters). */
  maxJsonReplyBytes: number;
  maxQueue: number;
  requestTimeoutMs: number;
  shutdownTimeoutMs: number;
  /** 0 = off. */
  maxEventLoopDelayMs: number;
  /** 0 = off. */
  maxHeapUsedBytes: number;
  /** Empty = no authentication. Never log these. */
  apiKeys: string[];
  /** Requests per minute per API key (or per client IP without keys); 0 = off. */
  rateLimitMax: number;
  scale: ScaleConfig;
  /** When set, GET /metrics needs `Authorization: Bearer <it>`; unset, it is open like the probes. Never log it. */
  metricsToken?: string | undefined;
  /** Most bytes the arrays of one calibration .npz may hold, uncompressed. */
  calibrationMaxBytes: number;
  /** Most samples (the arrays' leading axis) one calibration .npz may hold. */
  calibrationMaxSamples: number;
  /** Most bytes of K×K activation statistics (method=gptq|awq) alive at once in one task. */
  hessianMaxBytes: number;
}

/** Where jobs live and what this replica does with them (README "Scaling out"). */
export interface ScaleConfig {
  jobsStore: 'local' | 'redis';
  /** api: takes uploads and serves jobs, runs none; worker: runs jobs, serves only probes. */
  role: 'all' | 'api' | 'worker';
  /** Never log it whole: it may hold a password. */
  redisUrl: string;
  s3: {
    endpoint: string | undefined;
    region: string;
    bucket: string;
    accessKeyId: string | undefined;
    secretAccessKey: string | undefined;
    forcePathStyle: boolean;
    /** Multipart part size; memory per transfer is at most partSize × uploadQueue. */
    partSize: number;
    uploadQueue: number;
  };
  lockMs: number;
  stalledIntervalMs: number;
  attempts: number;
  resultRedirect: boolean;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const known = Object.fromEntries(Object.keys(ConfigSchema.shape).filter((k) => env[k] !== undefined && env[k] !== '').map((k) => [k, env[k]]));
  const parsed = ConfigSchema.safeParse(known);
  if (!parsed.success) {
    // The message names the variable, never its value: API_KEYS must not reach the logs.
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
    arenaCacheBytes: c.ARENA_CACHE_BYTES,
    modelBodyLimit: c.MODEL_BODY_LIMIT,
    jobsDir: c.JOBS_DIR,
    jobsTtlS: c.JOBS_TTL_S,
    jobsMaxBytes: c.JOBS_MAX_BYTES,
    jobsConcurrency: c.JOBS_CONCURRENCY,
    maxElements: c.MAX_ELEMENTS,
    maxDims: c.MAX_DIMS,
    maxMatmulMacs: c.MAX_MATMUL_MACS,
    dataAwareMaxMacs: c.DATA_AWARE_MAX_MACS,
    maxJsonReplyBytes: c.MAX_JSON_REPLY_BYTES,
    maxQueue: c.MAX_QUEUE,
    requestTimeoutMs: c.REQUEST_TIMEOUT_MS,
    shutdownTimeoutMs: c.SHUTDOWN_TIMEOUT_MS,
    maxEventLoopDelayMs: c.MAX_EVENT_LOOP_DELAY_MS,
    maxHeapUsedBytes: c.MAX_HEAP_USED_BYTES,
    apiKeys: c.API_KEYS,
    rateLimitMax: c.RATE_LIMIT_MAX,
    scale: scaleConfig(c),
    metricsToken: c.METRICS_TOKEN,
    calibrationMaxBytes: c.CALIBRATION_MAX_BYTES,
    calibrationMaxSamples: c.CALIBRATION_MAX_SAMPLES,
    hessianMaxBytes: c.HESSIAN_MAX_BYTES,
  };
}

function scaleConfig(c: EnvConfig): ScaleConfig {
  if (c.JOBS_STORE === 'local' && c.ROLE !== 'all') throw new Error(`invalid configuration: ROLE=${c.ROLE} needs JOBS_STORE=redis (a local store has one replica doing everything)`);
  if (c.JOBS_STORE === 'redis' && !c.S3_BUCKET) throw new Error('invalid configuration: JOBS_STORE=redis needs S3_BUCKET');
  return {
    jobsStore: c.JOBS_STORE,
    role: c.ROLE,
    redisUrl: c.REDIS_URL,
    s3: {
      endpoint: c.S3_ENDPOINT,
      region: c.S3_REGION,
      bucket: c.S3_BUCKET ?? '',
      accessKeyId: c.S3_ACCESS_KEY_ID,
      secretAccessKey: c.S3_SECRET_ACCESS_KEY,
      forcePathStyle: c.S3_FORCE_PATH_STYLE,
      partSize: c.S3_PART_SIZE,
      uploadQueue: c.S3_UPLOAD_QUEUE,
    },
    lockMs: c.JOBS_LOCK_MS,
    stalledIntervalMs: c.JOBS_STALLED_INTERVAL_MS,
    attempts: c.JOBS_ATTEMPTS,
    resultRedirect: c.JOBS_RESULT_REDIRECT,
  };
}

/** What the server logs at startup: every limit, and how many API keys (never the keys). */
export function describeConfig(config: Config): Record<string, unknown> {
  const { apiKeys, scale, metricsToken, ...rest } = config;
  // Credentials stay out of the logs: the Redis URL may hold a password.
  const { redisUrl: _url, s3, ...jobs } = scale;
  const { secretAccessKey: _secret, accessKeyId: _key, ...bucket } = s3;
  return { ...rest, apiKeys: apiKeys.length, metricsToken: metricsToken !== undefined, scale: jobs.jobsStore === 'local' ? { jobsStore: 'local' } : { ...jobs, s3: bucket } };
}

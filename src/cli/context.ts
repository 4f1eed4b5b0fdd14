import { loadConfig, type Config } from '../config.js';
import type { TaskLimits } from '../pool/messages.js';
import { QuantPool } from '../pool/pool.js';

// What a command runs on: the service's configuration (the same environment variables and
// limits) and a worker pool in this process, the same pool and tasks the service uses.

export interface CliContext {
  config: Config;
  limits: TaskLimits;
  pool: () => QuantPool;
  close: () => Promise<void>;
}

export function cliContext(env: NodeJS.ProcessEnv = process.env): CliContext {
  const config = loadConfig(env);
  let pool: QuantPool | undefined;
  return {
    config,
    limits: { maxElements: config.maxElements, maxDims: config.maxDims, maxMatmulMacs: config.maxMatmulMacs, dataAwareMaxMacs: config.dataAwareMaxMacs, maxJsonReplyBytes: config.maxJsonReplyBytes, calibrationMaxBytes: config.calibrationMaxBytes, calibrationMaxSamples: config.calibrationMaxSamples, hessianMaxBytes: config.hessianMaxBytes },
    // One task at a time: one worker (the task itself is what takes the time).
    pool: () => (pool ??= new QuantPool({ workers: 1, maxQueue: 4 })),
    close: async () => {
      await pool?.close();
    },
  };
}

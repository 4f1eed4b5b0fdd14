import { cpus, totalmem } from 'node:os';
import { createRequire } from 'node:module';

export interface Machine {
  cpu: string;
  cores: number;
  memory_gib: number;
  node: string;
  onnxruntime_node: string;
  platform: string;
}

export function machine(): Machine {
  const require = createRequire(import.meta.url);
  const ort = require('onnxruntime-node/package.json') as { version: string };
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memory_gib: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    onnxruntime_node: ort.version,
    platform: `${process.platform}-${process.arch}`,
  };
}

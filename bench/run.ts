import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { quantize } from '../src/core/quantize.js';

// Kernel throughput of the reference core against a plain copy of the same data, one thread.
const quick = process.argv.includes('--quick');
const n = quick ? 1 << 20 : 1 << 24;
const runs = quick ? 3 : 5;
const x = new Float32Array(n);
for (let i = 0; i < n; i++) x[i] = Math.fround(Math.sin(i * 12.9898) * 43758.5453 % 1);

function median(f: () => void): number {
  f();
  const t: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    f();
    t.push(performance.now() - t0);
  }
  return t.sort((a, b) => a - b)[t.length >> 1]!;
}

const copy = median(() => new Float32Array(n).set(x));
const int8 = median(() => quantize(x, [n], { bits: 8, scheme: 'symmetric', granularity: 'per_tensor', axis: 0, groupSize: 128, calibration: 'minmax', percentile: 99.99 }));
console.log(`machine: ${cpus()[0]?.model} × ${cpus().length}, node ${process.version}, ${n} float32 elements, median of ${runs}`);
console.log(`copy                       ${(n / copy / 1e3).toFixed(0)} Melem/s`);
console.log(`int8 symmetric per tensor  ${(n / int8 / 1e3).toFixed(0)} Melem/s  (${(copy / int8).toFixed(3)} × copy)`);

import { quantizeFp8 } from '../src/core/fp8.js';
import { reportFromSums } from '../src/core/metrics.js';
import type { QuantMethod } from '../src/core/methods/index.js';
import { quantizeNf4 } from '../src/core/nf4.js';
import { planParams, quantize, type QuantSpec } from '../src/core/quantize.js';
import type { CalibrationMethod, Scheme } from '../src/core/calibrate.js';
import { gaussian } from './lib/tensors.js';

// The SNR table of README.md (Methods): every method × calibration on a seeded [256, 4096]
// tensor, N(0, 1) and Student-t(5), per group along the rows; NF4 and FP8 beside.
// node dist/bench/methods-snr.js (about two minutes: lsq and hqq are plain TypeScript).
const rows = 256;
const cols = 4096;
const n = rows * cols;
const normal = gaussian(n, 5);
const g = gaussian(n * 6, 9);
const t5 = new Float32Array(n);
for (let i = 0; i < n; i++) {
  let chi = 0;
  for (let k = 1; k <= 5; k++) chi += g[i * 6 + k]! ** 2;
  t5[i] = g[i * 6]! / Math.sqrt(chi / 5);
}
const variants: Array<[CalibrationMethod, QuantMethod]> = [['minmax', 'rtn'], ['mse', 'rtn'], ['minmax', 'lsq'], ['minmax', 'hqq'], ['mse', 'lsq']];
const snr = (x: Float32Array, s: QuantSpec) => reportFromSums(quantize(x, [rows, cols], s).sums).snr_db!.toFixed(2);
console.log('data group bits scheme | ' + variants.map(([c, m]) => `${m}+${c}`).join(' | '));
for (const [name, x] of [['N(0,1)', normal], ['t(5)', t5]] as const) {
  for (const groupSize of [32, 128]) {
    for (const bits of [2, 3, 4]) {
      for (const scheme of ['asymmetric', 'symmetric'] as Scheme[]) {
        const cells = variants.map(([calibration, method]) => snr(x, { bits, scheme, granularity: 'per_group', axis: -1, groupSize, calibration, percentile: 99.99, method }));
        console.log(`${name} g${groupSize} ${bits} ${scheme} | ${cells.join(' | ')}`);
      }
    }
  }
  for (const block of [32, 64, 128]) console.log(`${name} nf4 g${block}: ${reportFromSums(quantizeNf4(x, block).sums).snr_db!.toFixed(2)}`);
  const plan = planParams([rows, cols], 'per_channel', 0, 1);
  for (const type of ['float8e4m3fn', 'float8e5m2'] as const) console.log(`${name} ${type} per row: ${reportFromSums(quantizeFp8(x, plan, type).sums).snr_db!.toFixed(2)}`);
  console.log(`${name} int8 per row: ${snr(x, { bits: 8, scheme: 'symmetric', granularity: 'per_channel', axis: 0, groupSize: 1, calibration: 'minmax', percentile: 99.99 })}`);
}

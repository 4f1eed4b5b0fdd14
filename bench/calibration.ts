import { quantize, type QuantSpec } from '../src/core/quantize.js';
import { row, type BenchOptions, type ScenarioResult } from './lib/rows.js';
import { timeMedian } from './lib/stats.js';
import { gaussian } from './lib/tensors.js';

// MSE clip search against min-max on the same tensor: each job is quantize() (calibrate,
// quantize, error report), one thread.
export async function run(o: BenchOptions): Promise<ScenarioResult> {
  const n = o.quick ? 1 << 22 : 1 << 24;
  const x = gaussian(n, 11);
  const spec: QuantSpec = { bits: 8, scheme: 'symmetric', granularity: 'per_tensor', axis: 0, groupSize: 128, calibration: 'minmax', percentile: 99.99 };
  const minmax = await timeMedian(() => quantize(x, [n], spec), o.runs);
  const mse = await timeMedian(() => quantize(x, [n], { ...spec, calibration: 'mse' }), o.runs);
  const percentile = await timeMedian(() => quantize(x, [n], { ...spec, calibration: 'percentile' }), Math.min(o.runs, 5), 1);
  return {
    rows: [
      row({ name: 'calib.mse', value: mse, unit: 'ms', baselineName: 'min-max job', baselineValue: minmax, better: 'lower', target: 4, note: `${n} elements, per tensor int8; ratio = MSE job / min-max job` }),
    ],
    details: [{ name: `percentile (99.99) job on ${n} elements`, value: percentile, unit: 'ms' }],
  };
}

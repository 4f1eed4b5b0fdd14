import { reportFromSums } from '../src/core/metrics.js';
import { quantize, type QuantSpec } from '../src/core/quantize.js';
import { row, type BenchOptions, type ScenarioResult } from './lib/rows.js';
import { timeMedian } from './lib/stats.js';
import { gaussian } from './lib/tensors.js';

// The data-free methods against rtn on the same weight: each job is quantize() (calibrate,
// fit the parameters, quantize, error report), one thread, 4-bit asymmetric in groups of 32
// along the rows of a [rows, 4096] weight (the model path's 4-bit default).
export async function run(o: BenchOptions): Promise<ScenarioResult> {
  const rows = o.quick ? 64 : 256;
  const cols = 4096;
  const n = rows * cols;
  const x = gaussian(n, 21);
  const spec: QuantSpec = { bits: 4, scheme: 'asymmetric', granularity: 'per_group', axis: -1, groupSize: 32, calibration: 'minmax', percentile: 99.99 };
  const runs = Math.min(o.runs, 5);
  const rtn = await timeMedian(() => quantize(x, [rows, cols], spec), o.runs);
  const times: Record<string, number> = {};
  const snr: Record<string, number> = {};
  for (const method of ['rtn', 'lsq', 'hqq'] as const) {
    if (method !== 'rtn') times[method] = await timeMedian(() => quantize(x, [rows, cols], { ...spec, method }), runs, 1);
    snr[method] = reportFromSums(quantize(x, [rows, cols], { ...spec, method }).sums).snr_db!;
  }
  const note = (m: string) => `[${rows}, ${cols}] 4-bit asymmetric g32; ratio = ${m} job / rtn job; SNR ${snr[m]!.toFixed(2)} dB vs rtn ${snr.rtn!.toFixed(2)} dB`;
  return {
    rows: [
      row({ name: 'method.lsq', value: times.lsq!, unit: 'ms', baselineName: 'rtn job', baselineValue: rtn, better: 'lower', target: 3, note: note('lsq') }),
      row({ name: 'method.hqq', value: times.hqq!, unit: 'ms', baselineName: 'rtn job', baselineValue: rtn, better: 'lower', target: 3, note: note('hqq') }),
    ],
    details: Object.entries(snr).map(([m, v]) => ({ name: `${m} SNR on ${n} Gaussian values, 4-bit g32`, value: v, unit: 'dB' })),
  };
}

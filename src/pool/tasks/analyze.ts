import { INT_DTYPE_INFO, type IntDType, type UnpackedArray } from '../../core/dtypes.js';
import { reportFromSums } from '../../core/metrics.js';
import { calibrate, quantizeWith, type Granularity } from '../../core/quantize.js';
import type { CalibrationMethod, Scheme } from '../../core/calibrate.js';
import type { QuantMethod } from '../../core/methods/index.js';
import type { Task, TaskReply } from '../messages.js';
import { decodeInput } from './decode-input.js';
import { jsonBody, sizeReport, specOf } from './report.js';

/** Every requested combination of bits × scheme × granularity × calibration on one tensor. */
export function runAnalyze(task: Extract<Task, { op: 'analyze' }>): TaskReply {
  const { data, shape } = decodeInput(task.input, task.limits);
  const o = task.options;
  const rows: Array<{
    bits: number;
    scheme: Scheme;
    granularity: Granularity;
    calibration: CalibrationMethod;
    method: QuantMethod;
    error: ReturnType<typeof reportFromSums>;
    size: ReturnType<typeof sizeReport>;
  }> = [];
  // One output buffer per container, reused across rows: only the error sums are kept.
  const scratch = new Map<IntDType, UnpackedArray>();
  for (const bits of o.bits) {
    for (const scheme of o.schemes) {
      for (const granularity of o.granularities) {
        for (const calibration of o.calibrations) {
          for (const method of o.methods ?? ['rtn']) {
            const spec = specOf({ bits, scheme, granularity, calibration, method, axis: o.axis, group_size: o.group_size, percentile: o.percentile });
            const params = calibrate(data, shape, spec);
            const out = scratch.get(params.dtype) ?? INT_DTYPE_INFO[params.dtype].create(data.length);
            scratch.set(params.dtype, out);
            const { sums } = quantizeWith(data, params, out);
            rows.push({ bits, scheme, granularity, calibration, method, error: reportFromSums(sums), size: sizeReport(params, data.length) });
          }
        }
      }
    }
  }
  let recommended: (typeof rows)[number] | null = null;
  if (o.target_snr_db !== undefined) {
    for (const row of rows) {
      if (row.error.snr_db !== null && row.error.snr_db >= o.target_snr_db) {
        // The smallest; between equal sizes (methods and calibrations cost no bytes), the higher SNR.
        const smaller = !recommended || row.size.quantized_bytes < recommended.size.quantized_bytes;
        const better = recommended && row.size.quantized_bytes === recommended.size.quantized_bytes && row.error.snr_db > recommended.error.snr_db!;
        if (smaller || better) recommended = row;
      }
    }
  }
  return { body: jsonBody({ shape, rows, recommended }), contentType: 'application/json', log: { shape, elements: data.length } };
}

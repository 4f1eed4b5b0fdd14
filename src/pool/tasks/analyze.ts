import { INT_DTYPE_INFO, type IntDType, type UnpackedArray } from '../../core/dtypes.js';
import { reportFromSums } from '../../core/metrics.js';
import { calibrate, dequantizeWith, quantizeWith, type Granularity, type QuantSpec } from '../../core/quantize.js';
import type { CalibrationMethod, Scheme } from '../../core/calibrate.js';
import type { QuantMethod } from '../../core/methods/index.js';
import { inputAxis, isTensorDataMethod, outputSnrs, quantizeDataAware, type TensorDataMethod } from '../../core/methods/data-aware.js';
import type { Task, TaskReply } from '../messages.js';
import { decodeInput, npyTensor, npzMembers } from './decode-input.js';
import { statisticsFor, statisticsForAsync, type CalibrationMembers } from './data-aware-tensor.js';
import { jsonBody, sizeReport, specOf } from './report.js';
import { Errors } from '../../errors.js';
import type { Tensor } from '../../core/tensor.js';

type Row = {
  bits: number;
  scheme: Scheme;
  granularity: Granularity;
  calibration: CalibrationMethod;
  method: QuantMethod | TensorDataMethod;
  error: ReturnType<typeof reportFromSums>;
  output_snr_db?: number | null;
  size: ReturnType<typeof sizeReport>;
};

/** The tensor, and the calibration statistics of an .npz body. */
function inputOf(task: Extract<Task, { op: 'analyze' }>): { tensor: Tensor; calibration: CalibrationMembers } {
  if (task.input.kind !== 'npz') return { tensor: decodeInput(task.input, task.limits), calibration: {} };
  const members = npzMembers(task.input, ['tensor', 'activations', 'xtx']);
  const bytes = members.get('tensor');
  if (!bytes) throw new Errors.Npy('the .npz body has no member tensor.npy (numpy.savez(f, tensor=w, activations=x))');
  return { tensor: npyTensor(bytes, task.limits, 'tensor (tensor.npy)', true), calibration: { activations: members.get('activations'), xtx: members.get('xtx') } };
}

/**
 * Every requested combination of bits × scheme × granularity × calibration × method on one
 * tensor. With calibration statistics every row also gets its output SNR on H = XᵀX, and the
 * data-aware methods join the rows where they apply (per_group, per_channel; minmax).
 */
export async function runAnalyze(task: Extract<Task, { op: 'analyze' }>): Promise<TaskReply> {
  const { tensor, calibration } = inputOf(task);
  const { data, shape } = tensor;
  const o = task.options;
  const methods = o.methods ?? ['rtn'];
  const withStats = calibration.activations !== undefined || calibration.xtx !== undefined;
  const wanted = methods.find(isTensorDataMethod);
  if (wanted && !withStats) {
    throw new Errors.Option(`methods lists ${wanted}, which needs calibration statistics: send an .npz body (application/x-npz) with tensor and activations ([n, in]) or xtx ([in, in])`);
  }
  const gptqOpts = { damp: o.gptq_damp, blockSize: o.gptq_block_size, actOrder: o.gptq_act_order };
  // H once per input-feature count (the granularities' axes may put the features on either axis).
  const hessians = new Map<number, Float64Array>();
  // The bound covers every row that will use H (each costs its output-error forms, gptq rows their factorization too).
  const repeats = o.bits.length * o.schemes.length * o.granularities.filter((g) => g !== 'per_tensor').length * o.calibrations.length * methods.length;
  const hessianFor = (spec: QuantSpec, method: TensorDataMethod | 'rtn'): { h: Float64Array; kAxis: 0 | 1 } => {
    const kAxis = inputAxis(shape, spec, method);
    const k = shape[kAxis]!;
    let h = hessians.get(k);
    if (!h) {
      h = statisticsFor(task.limits, tensor, calibration, spec, methods.includes('gptq') ? 'gptq' : method, repeats).h;
      hessians.set(k, h);
    }
    return { h, kAxis };
  };
  // The first row that needs H, ahead of the loops: wide activations are summed on onnxruntime
  // (statisticsForAsync), which the synchronous rows below cannot wait for.
  const firstGrouped = o.granularities.find((g) => g !== 'per_tensor');
  if (withStats && calibration.activations && shape.length === 2 && firstGrouped) {
    const spec = specOf({ bits: o.bits[0]!, scheme: o.schemes[0]!, granularity: firstGrouped, calibration: o.calibrations[0]!, method: undefined, axis: o.axis, group_size: o.group_size, percentile: o.percentile });
    const k = shape[inputAxis(shape, spec, 'rtn')]!;
    hessians.set(k, (await statisticsForAsync(task.limits, tensor, calibration, spec, methods.includes('gptq') ? 'gptq' : 'rtn', repeats)).h);
  }
  const rows: Row[] = [];
  // One output buffer per container, reused across rows: only the error sums are kept.
  const scratch = new Map<IntDType, UnpackedArray>();
  for (const bits of o.bits) {
    for (const scheme of o.schemes) {
      for (const granularity of o.granularities) {
        for (const calibrationMethod of o.calibrations) {
          for (const method of methods) {
            const dataAware = isTensorDataMethod(method) ? method : undefined;
            if (dataAware && (granularity === 'per_tensor' || calibrationMethod !== 'minmax' || (dataAware === 'gptq' && bits > 8))) continue;
            const spec = specOf({ bits, scheme, granularity, calibration: calibrationMethod, method: dataAware ? undefined : method, axis: o.axis, group_size: o.group_size, percentile: o.percentile });
            const size = (p: Parameters<typeof sizeReport>[0]) => sizeReport(p, data.length);
            if (dataAware) {
              const { h } = hessianFor(spec, dataAware);
              const r = quantizeDataAware(data, shape, spec, dataAware, h, gptqOpts);
              rows.push({ bits, scheme, granularity, calibration: calibrationMethod, method, error: reportFromSums(r.sums), output_snr_db: r.outputSnrDb, size: size(r.params) });
              continue;
            }
            const params = calibrate(data, shape, spec);
            const out = scratch.get(params.dtype) ?? INT_DTYPE_INFO[params.dtype].create(data.length);
            scratch.set(params.dtype, out);
            const { sums } = quantizeWith(data, params, out);
            const row: Row = { bits, scheme, granularity, calibration: calibrationMethod, method, error: reportFromSums(sums), size: size(params) };
            if (withStats && granularity !== 'per_tensor' && shape.length === 2) {
              const { h, kAxis } = hessianFor(spec, 'rtn');
              row.output_snr_db = outputSnrs(data, shape, kAxis, h, [dequantizeWith(out, params)])[0]!;
            } else if (withStats) row.output_snr_db = null;
            rows.push(row);
          }
        }
      }
    }
  }
  let recommended: Row | null = null;
  if (o.target_snr_db !== undefined) {
    // With statistics the output error decides (what the data-aware methods lower); else the weight error.
    const snr = (r: Row) => (withStats ? (r.output_snr_db ?? null) : r.error.snr_db);
    for (const row of rows) {
      const s = snr(row);
      if (s !== null && s >= o.target_snr_db) {
        // The smallest; between equal sizes (methods and calibrations cost no bytes), the higher SNR.
        const smaller = !recommended || row.size.quantized_bytes < recommended.size.quantized_bytes;
        const better = recommended && row.size.quantized_bytes === recommended.size.quantized_bytes && s > snr(recommended)!;
        if (smaller || better) recommended = row;
      }
    }
  }
  return { body: jsonBody({ shape, rows, recommended }), contentType: 'application/json', log: { shape, elements: data.length } };
}

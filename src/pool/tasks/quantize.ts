import { encodeNpy, npyHeaderBytes } from '../../codecs/npy.js';
import { encodeNpz } from '../../codecs/npz.js';
import { INT_DTYPE_INFO } from '../../core/dtypes.js';
import { errorHistogram, reportFromSums } from '../../core/metrics.js';
import { pack } from '../../core/pack.js';
import { givenParams } from '../../core/given.js';
import { calibrate, dequantizeWith, intParamsOf, planParams, quantize, quantizeWith, type QuantSpec } from '../../core/quantize.js';
import { METHODS } from '../../core/methods/index.js';
import { isTensorDataMethod, quantizeDataAware, TENSOR_DATA_METHODS } from '../../core/methods/data-aware.js';
import { runDataAwareTensor, type CalibrationMembers } from './data-aware-tensor.js';
import type { Task, TaskReply } from '../messages.js';
import { decodeInput, npyTensor, npzMembers } from './decode-input.js';
import { givenArrayOf, givenArrayOfNpy } from './given-params.js';
import { Errors } from '../../errors.js';
import { bytesOf, jsonBody, jsonBodyWithRaw, optionsEcho, paramsJson, paramsJsonChars, sizeReport, specOf } from './report.js';

/** Stands in for the base64 data while the rest of the reply is serialised. */
const RAW = '\u0000quantized-data\u0000';

/** A JSON reply too big for one string is refused before the work, naming what to ask for instead. */
function checkJsonReply(task: Extract<Task, { op: 'quantize' }>, shape: number[], n: number, spec: QuantSpec): void {
  if (task.accept !== 'json') return;
  const scales = planParams(shape, spec.granularity, spec.axis, spec.groupSize).count;
  const { qMin, qMax } = intParamsOf(spec.bits, spec.scheme);
  const valueChars = task.options.include_values ? n * (Math.max(String(qMin).length, String(qMax).length) + 1) : 0;
  if (paramsJsonChars(scales) + valueChars <= task.limits.maxJsonReplyBytes) return;
  throw new Errors.NotAcceptable(
    `the JSON reply would hold ${scales} scales and zero points${task.options.include_values ? ` and ${n} values` : ''}, ` +
      `past the ${task.limits.maxJsonReplyBytes} bytes of text a JSON reply may take (MAX_JSON_REPLY_BYTES): ask for Accept: application/x-npz` +
      `${task.options.include_values ? ', leave out include_values' : ''} or use a larger group_size`,
  );
}

/** The tensor and, when the caller gave them, its scale and zero point (options or .npz members). */
function inputsOf(task: Extract<Task, { op: 'quantize' }>) {
  const { input, options, limits } = task;
  let scale = options.scale === undefined ? undefined : givenArrayOf(options.scale, 'scale', limits);
  let zeroPoint = options.zero_point === undefined ? undefined : givenArrayOf(options.zero_point, 'zero_point', limits);
  if (input.kind !== 'npz') {
    const given = scale !== undefined || zeroPoint !== undefined;
    return { tensor: decodeInput(input, limits, 'tensor', !given), scale, zeroPoint, calibration: {} };
  }
  const members = npzMembers(input, ['tensor', 'scale', 'zero_point', 'activations', 'xtx']);
  for (const [name, value] of [['scale', scale], ['zero_point', zeroPoint]] as const) {
    if (value !== undefined && members.has(name)) throw new Errors.Option(`${name} is both in the query string and a member of the .npz body; give it once`);
  }
  const s = members.get('scale');
  const z = members.get('zero_point');
  if (s) scale = givenArrayOfNpy(s, 'scale', limits);
  if (z) zeroPoint = givenArrayOfNpy(z, 'zero_point', limits);
  const bytes = members.get('tensor');
  if (!bytes) throw new Errors.Npy('the .npz body has no member tensor.npy (numpy.savez(f, tensor=x, scale=..., zero_point=...))');
  const given = scale !== undefined || zeroPoint !== undefined;
  const calibration: CalibrationMembers = { activations: members.get('activations'), xtx: members.get('xtx') };
  return { tensor: npyTensor(bytes, limits, 'tensor (tensor.npy)', !given), scale, zeroPoint, calibration };
}

/**
 * The snr_db every method reaches with the same options (the requested one is already known);
 * the data-aware ones too when the statistics are there (h).
 */
function compareMethods(data: Float32Array, shape: number[], spec: QuantSpec, own: number | null, requested: string, h?: Float64Array, gptqOpts?: Parameters<typeof quantizeDataAware>[5]): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  let scratch: ReturnType<typeof quantize>['q'] | undefined;
  if (h) {
    for (const method of TENSOR_DATA_METHODS) {
      out[method] = method === requested ? own : reportFromSums(quantizeDataAware(data, shape, spec, method, h, gptqOpts).sums).snr_db;
    }
  }
  for (const method of METHODS) {
    if (method === requested) {
      out[method] = own;
      continue;
    }
    const params = calibrate(data, shape, { ...spec, method });
    const r = quantizeWith(data, params, scratch);
    scratch = r.q;
    out[method] = reportFromSums(r.sums).snr_db;
  }
  return out;
}

export async function runQuantize(task: Extract<Task, { op: 'quantize' }>): Promise<TaskReply> {
  const { tensor, scale: givenScale, zeroPoint, calibration } = inputsOf(task);
  const { data, shape } = tensor;
  const spec = specOf(task.options);
  const requested = task.options.method ?? 'rtn';
  if (zeroPoint && !givenScale) throw new Errors.Option('zero_point was given without scale: give both (or neither, to calibrate)');
  if (!isTensorDataMethod(requested) && (calibration.activations || calibration.xtx)) {
    throw new Errors.Option(`the .npz body holds calibration statistics (activations or xtx), which method ${requested} does not use: ask for method=imatrix or method=gptq`);
  }
  const dataAware = isTensorDataMethod(requested) ? requested : undefined;
  if (dataAware && givenScale) throw new Errors.Option(`method ${dataAware} fits its own scales: leave out scale and zero_point`);
  if (dataAware && spec.calibration !== 'minmax') throw new Errors.Option(`method ${dataAware} takes calibration=minmax (its grid is min-max per group), got: ${spec.calibration}`);
  checkJsonReply(task, shape, data.length, spec);
  const gptqOpts = { damp: task.options.gptq_damp, blockSize: task.options.gptq_block_size, actOrder: task.options.gptq_act_order };
  const da = dataAware ? await runDataAwareTensor(task.limits, tensor, calibration, spec, dataAware, gptqOpts) : undefined;
  // Given parameters skip calibration: QuantizeLinear with exactly those, on the same kernels.
  const { params, q, sums } = da ?? (givenScale ? { params: givenParams(shape, spec, givenScale, zeroPoint), q: undefined, sums: undefined } : quantize(data, shape, spec));
  const done = q && sums ? { q, sums } : quantizeWith(data, params);
  const info = INT_DTYPE_INFO[params.dtype];
  const paramChars = paramsJsonChars(params.scale.length);
  // report.json in an .npz leaves huge parameter arrays to scale.npy and zero_point.npy.
  const params4json: Partial<ReturnType<typeof paramsJson>> = task.accept === 'json' || paramChars <= task.limits.maxJsonReplyBytes / 2 ? paramsJson(params) : {};
  const echo = { ...optionsEcho(spec, params), method: requested };
  const errorReport = reportFromSums(done.sums);
  // Given parameters have no method to compare: they are used as they are.
  const methods = task.options.compare_methods && !givenScale ? compareMethods(data, shape, spec, errorReport.snr_db, requested, da?.h, gptqOpts) : undefined;
  const report = {
    shape,
    ...echo,
    calibration: givenScale ? { method: 'given' as const, percentile: null } : echo.calibration,
    ...(methods ? { methods } : {}),
    q_min: params.qMin,
    q_max: params.qMax,
    ...params4json,
    error: errorReport,
    ...(da
      ? {
          data_aware: {
            statistics: da.statistics,
            activation_rows: da.activationRows,
            output_snr_db: da.outputSnrDb,
            rtn_output_snr_db: da.rtnOutputSnrDb,
            damp: da.damp ?? null,
          },
        }
      : {}),
    // Costs a dequantized copy of the tensor, so only when asked for.
    ...(task.options.histogram_bins ? { error_histogram: errorHistogram(data, dequantizeWith(done.q, params), task.options.histogram_bins) } : {}),
    size: sizeReport(params, data.length, zeroPoint !== undefined),
  };
  const log = { shape, elements: data.length };
  if (task.accept === 'npz') {
    const paramShape = params.plan.paramShape;
    const zeroPoint = info.create(params.zeroPoint.length);
    zeroPoint.set(params.zeroPoint);
    // The integers go into the archive straight from q, behind their .npy header.
    const body = encodeNpz([
      { name: 'quantized.npy', data: [npyHeaderBytes(info.npyDescr, shape), bytesOf(done.q)] },
      { name: 'scale.npy', data: encodeNpy(params.scale, '<f4', paramShape) },
      { name: 'zero_point.npy', data: encodeNpy(zeroPoint, info.npyDescr, paramShape) },
      { name: 'report.json', data: jsonBody({ ...report, quantized: { dtype: params.dtype } }) },
    ]);
    return { body, contentType: 'application/x-npz', log };
  }
  const packed = pack(done.q, params.dtype);
  const b64 = Buffer.from(packed.buffer, packed.byteOffset, packed.byteLength).toString('base64');
  const quantized: Record<string, unknown> = { dtype: params.dtype, encoding: 'base64', data: RAW };
  if (task.options.include_values) quantized.values = Array.from(done.q);
  const { scale, zero_point, error, data_aware, error_histogram, size, ...head } = report;
  const body = jsonBodyWithRaw({ ...head, quantized, scale, zero_point, error, data_aware, error_histogram, size }, RAW, b64);
  return { body, contentType: 'application/json', log };
}

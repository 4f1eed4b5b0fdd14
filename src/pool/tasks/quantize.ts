import { encodeNpy, npyHeaderBytes } from '../../codecs/npy.js';
import { encodeNpz } from '../../codecs/npz.js';
import { INT_DTYPE_INFO } from '../../core/dtypes.js';
import { errorHistogram, reportFromSums } from '../../core/metrics.js';
import { pack } from '../../core/pack.js';
import { dequantizeWith, intParamsOf, planParams, quantize, type QuantSpec } from '../../core/quantize.js';
import type { Task, TaskReply } from '../messages.js';
import { decodeInput } from './decode-input.js';
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

export function runQuantize(task: Extract<Task, { op: 'quantize' }>): TaskReply {
  const { data, shape } = decodeInput(task.input, task.limits);
  const spec = specOf(task.options);
  checkJsonReply(task, shape, data.length, spec);
  const { params, q, sums } = quantize(data, shape, spec);
  const info = INT_DTYPE_INFO[params.dtype];
  const paramChars = paramsJsonChars(params.scale.length);
  // report.json in an .npz leaves huge parameter arrays to scale.npy and zero_point.npy.
  const params4json: Partial<ReturnType<typeof paramsJson>> = task.accept === 'json' || paramChars <= task.limits.maxJsonReplyBytes / 2 ? paramsJson(params) : {};
  const report = {
    shape,
    ...optionsEcho(spec, params),
    q_min: params.qMin,
    q_max: params.qMax,
    ...params4json,
    error: reportFromSums(sums),
    // Costs a dequantized copy of the tensor, so only when asked for.
    ...(task.options.histogram_bins ? { error_histogram: errorHistogram(data, dequantizeWith(q, params), task.options.histogram_bins) } : {}),
    size: sizeReport(params, data.length),
  };
  const log = { shape, elements: data.length };
  if (task.accept === 'npz') {
    const paramShape = params.plan.paramShape;
    const zeroPoint = info.create(params.zeroPoint.length);
    zeroPoint.set(params.zeroPoint);
    // The integers go into the archive straight from q, behind their .npy header.
    const body = encodeNpz([
      { name: 'quantized.npy', data: [npyHeaderBytes(info.npyDescr, shape), bytesOf(q)] },
      { name: 'scale.npy', data: encodeNpy(params.scale, '<f4', paramShape) },
      { name: 'zero_point.npy', data: encodeNpy(zeroPoint, info.npyDescr, paramShape) },
      { name: 'report.json', data: jsonBody({ ...report, quantized: { dtype: params.dtype } }) },
    ]);
    return { body, contentType: 'application/x-npz', log };
  }
  const packed = pack(q, params.dtype);
  const b64 = Buffer.from(packed.buffer, packed.byteOffset, packed.byteLength).toString('base64');
  const quantized: Record<string, unknown> = { dtype: params.dtype, encoding: 'base64', data: RAW };
  if (task.options.include_values) quantized.values = Array.from(q);
  const { scale, zero_point, error, error_histogram, size, ...head } = report;
  const body = jsonBodyWithRaw({ ...head, quantized, scale, zero_point, error, error_histogram, size }, RAW, b64);
  return { body, contentType: 'application/json', log };
}

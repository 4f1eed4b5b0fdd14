import { encodeNpy, npyHeaderBytes } from '../../core/codecs/npy.js';
import { encodeNpz } from '../../core/codecs/npz.js';
import { INT_DTYPE_INFO } from '../../core/dtypes.js';
import { reportFromSums } from '../../core/metrics.js';
import { pack } from '../../core/pack.js';
import { quantize } from '../../core/quantize.js';
import type { Task, TaskReply } from '../messages.js';
import { decodeInput } from './decode-input.js';
import { bytesOf, jsonBody, jsonBodyWithRaw, optionsEcho, paramsJson, sizeReport, specOf } from './report.js';

/** Stands in for the base64 data while the rest of the reply is serialised. */
const RAW = '\u0000quantized-data\u0000';

export function runQuantize(task: Extract<Task, { op: 'quantize' }>): TaskReply {
  const { data, shape } = decodeInput(task.input, task.limits);
  const spec = specOf(task.options);
  const { params, q, sums } = quantize(data, shape, spec);
  const info = INT_DTYPE_INFO[params.dtype];
  const report = {
    shape,
    ...optionsEcho(spec, params),
    q_min: params.qMin,
    q_max: params.qMax,
    ...paramsJson(params),
    error: reportFromSums(sums),
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
  const { scale, zero_point, error, size, ...head } = report;
  const body = jsonBodyWithRaw({ ...head, quantized, scale, zero_point, error, size }, RAW, b64);
  return { body, contentType: 'application/json', log };
}

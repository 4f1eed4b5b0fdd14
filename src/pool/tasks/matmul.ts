import { quantizedMatmul } from '../../core/matmul.js';
import type { QuantParams } from '../../core/quantize.js';
import { Errors } from '../../errors.js';
import type { Task, TaskReply } from '../messages.js';
import { decodeInput } from './decode-input.js';
import { jsonBody, paramsJson } from './report.js';

function operand(p: QuantParams) {
  const { scale, zero_point } = paramsJson(p);
  return { dtype: p.dtype, q_min: p.qMin, q_max: p.qMax, scale, zero_point };
}

export function runMatmul(task: Extract<Task, { op: 'matmul' }>): TaskReply {
  const a = decodeInput(task.a, task.limits, 'a');
  const b = decodeInput(task.b, task.limits, 'b');
  if (a.shape.length === 2 && b.shape.length === 2) {
    const macs = a.shape[0]! * a.shape[1]! * b.shape[1]!;
    if (macs > task.limits.maxMatmulMacs) {
      throw new Errors.TooManyElements(
        `a [${a.shape.join(', ')}] @ b [${b.shape.join(', ')}] needs ${macs} multiply-adds; the limit is MAX_MATMUL_MACS=${task.limits.maxMatmulMacs}`,
      );
    }
    // A thin K makes a small MAC count with a huge product: the result is a tensor too.
    const outputs = a.shape[0]! * b.shape[1]!;
    if (outputs > task.limits.maxElements) {
      throw new Errors.TooManyElements(
        `a [${a.shape.join(', ')}] @ b [${b.shape.join(', ')}] has ${outputs} result elements; the limit is MAX_ELEMENTS=${task.limits.maxElements}`,
      );
    }
  }
  const r = quantizedMatmul(a, b, task.options);
  const body = {
    shape: r.shape,
    bits: task.options.bits,
    scheme: task.options.scheme,
    granularity: task.options.granularity,
    result: { dtype: 'float32', encoding: 'base64', data: Buffer.from(r.result.buffer, r.result.byteOffset, r.result.byteLength).toString('base64') },
    error: r.error,
    memory: r.memory,
    a: operand(r.a),
    b: operand(r.b),
  };
  return { body: jsonBody(body), contentType: 'application/json', log: { shape: r.shape, elements: a.data.length + b.data.length } };
}

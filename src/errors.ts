import createError from '@fastify/error';

// Every error the service can answer with, defined once. The README's error table is
// checked against this list by test/errors.test.ts.
export const Errors = {
  Validation: createError('QUANT_ERR_VALIDATION', '%s', 400),
  Option: createError('QUANT_ERR_OPTION', '%s', 400),
  TensorShape: createError('QUANT_ERR_TENSOR_SHAPE', '%s', 400),
  TensorData: createError('QUANT_ERR_TENSOR_DATA', '%s', 400),
  NonFinite: createError('QUANT_ERR_NON_FINITE', '%s', 400),
  Dtype: createError('QUANT_ERR_DTYPE', '%s', 400),
  Base64: createError('QUANT_ERR_BASE64', '%s', 400),
  Npy: createError('QUANT_ERR_NPY', '%s', 400),
  BadJson: createError('QUANT_ERR_BAD_JSON', '%s', 400),
  BadRequest: createError('QUANT_ERR_BAD_REQUEST', '%s', 400),
  Unauthorized: createError('QUANT_ERR_UNAUTHORIZED', '%s', 401),
  Onnx: createError('QUANT_ERR_ONNX', '%s', 400),
  Safetensors: createError('QUANT_ERR_SAFETENSORS', '%s', 400),
  Calibration: createError('QUANT_ERR_CALIBRATION', '%s', 400),
  CalibrationTooLarge: createError('QUANT_ERR_CALIBRATION_TOO_LARGE', '%s', 413),
  TooManyElements: createError('QUANT_ERR_TOO_MANY_ELEMENTS', '%s', 413),
  BodyTooLarge: createError('QUANT_ERR_BODY_TOO_LARGE', '%s', 413),
  UnsupportedMediaType: createError('QUANT_ERR_UNSUPPORTED_MEDIA_TYPE', '%s', 415),
  NotAcceptable: createError('QUANT_ERR_NOT_ACCEPTABLE', '%s', 406),
  NotFound: createError('QUANT_ERR_NOT_FOUND', '%s', 404),
  JobNotFound: createError('QUANT_ERR_JOB_NOT_FOUND', '%s', 404),
  JobNotReady: createError('QUANT_ERR_JOB_NOT_READY', '%s', 409),
  StorageFull: createError('QUANT_ERR_STORAGE_FULL', '%s', 507),
  RateLimited: createError('QUANT_ERR_RATE_LIMITED', '%s', 429),
  Overloaded: createError('QUANT_ERR_OVERLOADED', '%s', 503),
  ShuttingDown: createError('QUANT_ERR_SHUTTING_DOWN', '%s', 503),
  JobsUnavailable: createError('QUANT_ERR_JOBS_UNAVAILABLE', '%s', 503),
  Timeout: createError('QUANT_ERR_TIMEOUT', '%s', 504),
  Aborted: createError('QUANT_ERR_ABORTED', '%s', 499),
  Internal: createError('QUANT_ERR_INTERNAL', '%s', 500),
} as const;

export type ErrorName = keyof typeof Errors;

/** The plain shape an error takes when it crosses the worker boundary. */
export interface ErrorPayload {
  name: ErrorName;
  message: string;
}

export function isQuantError(err: unknown): err is Error & { code: string; statusCode: number } {
  return (
    err instanceof Error &&
    typeof (err as unknown as { code?: unknown }).code === 'string' &&
    (err as unknown as { code: string }).code.startsWith('QUANT_ERR_')
  );
}

export function errorNameOf(code: string): ErrorName | undefined {
  for (const [name, ctor] of Object.entries(Errors)) {
    if (new ctor('').code === code) return name as ErrorName;
  }
  return undefined;
}

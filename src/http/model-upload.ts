import type { FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { Errors, isQuantError } from '../errors.js';
import type { ModelFile, ModelTaskOptions } from '../pool/messages.js';
import { ModelOptions } from './schemas/models.js';
import { contentLength, readAll } from './read-upload.js';

// A model upload, from either body: the raw .onnx (options in the query string) or
// multipart/form-data with a `model` file part, option fields, an optional `inputs` .npz and
// one file part per external data file, named by its location.

export const MULTIPART = 'multipart/form-data';

export interface ModelUpload {
  model: Uint8Array;
  filename: string;
  external: ModelFile[];
  inputs: Uint8Array | undefined;
  /** format=static: the `calibration` .npz part. */
  calibration: Uint8Array | undefined;
  options: ModelTaskOptions;
}

export function parseModelOptions(values: Record<string, unknown>, where: string): ModelTaskOptions {
  return parseOptions(ModelOptions, values, where);
}

/** Options from the query string and multipart fields, by a route's schema; a failure names the field. */
export function parseOptions<T extends z.ZodType>(schema: T, values: Record<string, unknown>, where: string): z.output<T> {
  const parsed = schema.safeParse(values);
  if (!parsed.success) {
    const detail = parsed.error.issues
      .slice(0, 5)
      .map((i) => `${where}${i.path.length ? '/' + i.path.join('/') : ''}: ${i.message}`)
      .join('; ');
    throw new Errors.Validation(detail);
  }
  return parsed.data;
}

function multipartError(err: unknown, limit: number): Error {
  if (isQuantError(err)) return err;
  const code = (err as { code?: string }).code;
  switch (code) {
    case 'FST_REQ_FILE_TOO_LARGE':
      return new Errors.BodyTooLarge(`a file part exceeds the limit of ${limit} bytes (MODEL_BODY_LIMIT)`);
    case 'FST_PARTS_LIMIT':
    case 'FST_FILES_LIMIT':
    case 'FST_FIELDS_LIMIT':
      return new Errors.BodyTooLarge(`the multipart body has too many parts (${code})`);
    case 'FST_PROTO_VIOLATION':
      return new Errors.Validation('a multipart field is named __proto__, constructor or prototype');
  }
  return new Errors.Validation(`malformed multipart body: ${(err as Error).message}`);
}

async function readMultipart(request: FastifyRequest, limit: number): Promise<ModelUpload> {
  const fields: Record<string, unknown> = {};
  const files = new Map<string, { bytes: Uint8Array; filename: string }>();
  // No part can be longer than the whole body: every part gets that bound (see readAll).
  const bound = contentLength(request.headers);
  let total = 0;
  try {
    for await (const part of request.parts()) {
      if (part.type === 'field') {
        if (part.fieldname in fields) throw new Errors.Validation(`multipart field '${part.fieldname}' is given twice`);
        fields[part.fieldname] = part.value;
        continue;
      }
      if (files.has(part.fieldname)) throw new Errors.Validation(`multipart file part '${part.fieldname}' is given twice`);
      const buf = await readAll(part.file, bound, limit - total, `file part '${part.fieldname}'`);
      total += buf.length;
      files.set(part.fieldname, { bytes: new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), filename: part.filename });
    }
  } catch (err) {
    throw multipartError(err, limit);
  }
  const model = files.get('model');
  if (!model) throw new Errors.Validation(`the multipart body has no file part named 'model' (parts: ${[...files.keys()].join(', ') || 'none'})`);
  files.delete('model');
  const inputs = files.get('inputs');
  files.delete('inputs');
  const calibration = files.get('calibration');
  files.delete('calibration');
  const options = parseModelOptions({ ...(request.query as Record<string, unknown>), ...fields }, 'multipart');
  return {
    model: model.bytes,
    filename: model.filename || 'model.onnx',
    external: [...files].map(([name, f]) => ({ name, bytes: f.bytes })),
    inputs: inputs?.bytes,
    calibration: calibration?.bytes,
    options,
  };
}

export async function readModelUpload(request: FastifyRequest, limit: number): Promise<ModelUpload> {
  if (request.isMultipart()) return readMultipart(request, limit);
  if (!Buffer.isBuffer(request.body) || request.body.length === 0) {
    throw new Errors.Validation('send the model as the application/octet-stream body, or as the file part `model` of multipart/form-data');
  }
  return {
    model: new Uint8Array(request.body.buffer, request.body.byteOffset, request.body.byteLength),
    filename: 'model.onnx',
    external: [],
    inputs: undefined,
    calibration: undefined,
    options: parseModelOptions(request.query as Record<string, unknown>, 'querystring'),
  };
}

/**
 * The buffers a task may take by transfer: readAll gives each upload a buffer of its own
 * (its unused tail is untouched address space), so moving it copies nothing.
 */
export function uploadTransferList(u: ModelUpload): ArrayBuffer[] {
  const all = [u.model, ...u.external.map((f) => f.bytes), ...(u.inputs ? [u.inputs] : []), ...(u.calibration ? [u.calibration] : [])];
  return [...new Set(all.map((b) => b.buffer as ArrayBuffer))];
}

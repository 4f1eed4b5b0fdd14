import type { FastifyRequest } from 'fastify';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { checkLocation } from '../onnx/proto/tensor-data.js';
import { Errors, isQuantError } from '../errors.js';
import type { JobStore, StoredFile } from '../jobs/types.js';
import type { ModelTaskOptions } from '../pool/messages.js';
import { parseModelOptions } from './model-upload.js';

// A job's upload goes straight to the job store, file by file, never into memory: the
// model, the inputs .npz and external data files that can be many gigabytes.

export const MODEL_FILE = '__model__.onnx';
export const INPUTS_FILE = '__inputs__.npz';
export const CALIBRATION_FILE = '__calibration__.npz';

export interface JobUpload {
  filename: string;
  model: StoredFile;
  external: StoredFile[];
  inputs: StoredFile | undefined;
  calibration: StoredFile | undefined;
  options: ModelTaskOptions;
  bytes: number;
}

/** Counts bytes through; fails the pipeline once the upload passes what the store can take. */
export class Budget {
  used = 0;
  constructor(
    readonly limit: number,
    readonly tooBig: () => Error,
  ) {}

  meter(): Transform {
    return new Transform({
      transform: (chunk: Buffer, _enc, done) => {
        this.used += chunk.length;
        done(this.used > this.limit ? this.tooBig() : null, chunk);
      },
    });
  }
}

export async function save(store: JobStore, id: string, name: string, file: string, source: Readable, budget: Budget, probe?: Transform): Promise<StoredFile> {
  const before = budget.used;
  if (probe) await pipeline(source, budget.meter(), probe, await store.inputWriter(id, file));
  else await pipeline(source, budget.meter(), await store.inputWriter(id, file));
  return { name, file, size: budget.used - before };
}

export function uploadError(err: unknown, budget: Budget): Error {
  if (isQuantError(err)) return err;
  const code = (err as { code?: string }).code;
  if (code === 'FST_REQ_FILE_TOO_LARGE') return budget.tooBig();
  if (code === 'FST_PARTS_LIMIT' || code === 'FST_FILES_LIMIT' || code === 'FST_FIELDS_LIMIT') {
    return new Errors.BodyTooLarge(`the multipart body has too many parts (${code})`);
  }
  // File-system errors name server paths: say what failed, not where.
  if (code && /^(E[A-Z]+|ERR_INVALID_ARG_VALUE|ERR_INVALID_ARG_TYPE)$/.test(code)) {
    return new Errors.Validation(`the upload failed (${code}): a file part's name must be usable as a relative file name (no NUL, each path segment ≤ 255 bytes)`);
  }
  return new Errors.Validation(`the upload failed: ${(err as Error).message}`);
}

/** What an upload may still take: 507 past `room`, or 413 when even an empty store could not hold it. */
export function jobBudget(room: number, maxBytes: number): Budget {
  return new Budget(room, () =>
    room < maxBytes
      ? new Errors.StorageFull(`the job store holds too much to take this upload (JOBS_MAX_BYTES=${maxBytes}); retry when jobs have expired or been deleted`)
      : new Errors.BodyTooLarge(`the upload exceeds JOBS_MAX_BYTES=${maxBytes}`),
  );
}

/**
 * Streams the request into job `id`. `room` is what the store can still take; past it
 * the answer is 507 (or 413 when even an empty store could not hold the upload).
 */
export async function receiveJobUpload(request: FastifyRequest, store: JobStore, id: string, room: number, maxBytes: number): Promise<JobUpload> {
  const budget = jobBudget(room, maxBytes);
  try {
    if (!request.isMultipart()) {
      const model = await save(store, id, 'model', MODEL_FILE, request.body as Readable, budget);
      if (model.size === 0) throw new Errors.Validation('send the model as the application/octet-stream body, or as the file part `model` of multipart/form-data');
      const options = parseModelOptions(request.query as Record<string, unknown>, 'querystring');
      return { filename: 'model.onnx', model, external: [], inputs: undefined, calibration: undefined, options, bytes: budget.used };
    }
    const fields: Record<string, unknown> = {};
    const files = new Map<string, StoredFile>();
    let filename = 'model.onnx';
    for await (const part of request.parts()) {
      if (part.type === 'field') {
        if (part.fieldname in fields) throw new Errors.Validation(`multipart field '${part.fieldname}' is given twice`);
        fields[part.fieldname] = part.value;
        continue;
      }
      const name = part.fieldname;
      if (files.has(name)) throw new Errors.Validation(`multipart file part '${name}' is given twice`);
      let file: string;
      if (name === 'model') {
        file = MODEL_FILE;
        filename = part.filename || filename;
      } else if (name === 'inputs') file = INPUTS_FILE;
      else if (name === 'calibration') file = CALIBRATION_FILE;
      else {
        file = checkLocation(name, `(part '${name}')`);
        if (file === MODEL_FILE || file === INPUTS_FILE || file === CALIBRATION_FILE) throw new Errors.Validation(`a file part may not be named '${file}'`);
      }
      files.set(name, await save(store, id, name, file, part.file, budget));
    }
    const model = files.get('model');
    if (!model) throw new Errors.Validation(`the multipart body has no file part named 'model' (parts: ${[...files.keys()].join(', ') || 'none'})`);
    const options = parseModelOptions({ ...(request.query as Record<string, unknown>), ...fields }, 'multipart');
    const external = [...files.values()].filter((f) => f.name !== 'model' && f.name !== 'inputs' && f.name !== 'calibration');
    return { filename, model, external, inputs: files.get('inputs'), calibration: files.get('calibration'), options, bytes: budget.used };
  } catch (err) {
    throw uploadError(err, budget);
  }
}

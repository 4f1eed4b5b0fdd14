import type { FastifyRequest } from 'fastify';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { checkLocation } from '../onnx/proto/tensor-data.js';
import { OpsetScan } from '../onnx/proto/opset-scan.js';
import { checkModelRequest } from '../pool/tasks/model-pipeline.js';
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

/**
 * Takes an upload's bytes from what the store can take as they arrive (before they are
 * written) and fails the upload at the first it cannot: 507, or 413 when even an empty
 * store could not hold the upload. The committed record keeps them; an upload refused
 * gives them back (giveBack) once its files are deleted.
 */
export class Budget {
  used = 0;
  readonly #room: UploadRoom;
  readonly #maxBytes: number;

  constructor(room: UploadRoom, maxBytes: number) {
    this.#room = room;
    this.#maxBytes = maxBytes;
  }

  tooBig(total = Infinity): Error {
    return total > this.#maxBytes
      ? new Errors.BodyTooLarge(`the upload exceeds JOBS_MAX_BYTES=${this.#maxBytes}`)
      : new Errors.StorageFull(`the job store holds too much to take this upload (JOBS_MAX_BYTES=${this.#maxBytes}); retry when jobs have expired or been deleted`);
  }

  take(bytes: number): void {
    if (!this.#room.tryReserve(bytes, this.used)) throw this.tooBig(this.used + bytes);
    this.used += bytes;
  }

  meter(): Transform {
    return new Transform({
      transform: (chunk: Buffer, _enc, done) => {
        try {
          this.take(chunk.length);
          done(null, chunk);
        } catch (err) {
          done(err as Error);
        }
      },
    });
  }

  giveBack(): void {
    this.#room.release(this.used);
    this.used = 0;
  }
}

interface UploadRoom {
  /** `taken`: what this upload already has. */
  tryReserve(bytes: number, taken: number): boolean;
  release(bytes: number): void;
}

/**
 * An upload's budget: bytes reserved from the store's ledger where it has one (shared with
 * spill files and results being written), else the room the store reports when it starts.
 */
export async function uploadBudget(store: JobStore, maxBytes: number): Promise<Budget> {
  const ledger = store.ledger;
  if (ledger) return new Budget({ tryReserve: (bytes) => ledger.tryReserve(bytes, maxBytes), release: (bytes) => ledger.release(bytes) }, maxBytes);
  const room = maxBytes - (await store.usage());
  return new Budget({ tryReserve: (bytes, taken) => taken + bytes <= room, release: () => {} }, maxBytes);
}

export async function save(store: JobStore, id: string, name: string, file: string, source: Readable, budget: Budget, probe?: Transform): Promise<StoredFile> {
  const before = budget.used;
  if (probe) await pipeline(source, budget.meter(), probe, await store.inputWriter(id, file));
  else await pipeline(source, budget.meter(), await store.inputWriter(id, file));
  return { name, file, size: budget.used - before };
}

/**
 * What the synchronous endpoint would refuse in a job's query string alone (a raw .onnx
 * body: its options are all there), checked before the job is created or anything stored:
 * the same 400 rather than a 202 and a failed job.
 */
export function checkJobQuery(request: FastifyRequest): void {
  if (request.isMultipart()) return;
  checkModelRequest(parseModelOptions(request.query as Record<string, unknown>, 'querystring'), undefined, false);
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

/** Streams the request into job `id`, taking its bytes from `budget` (uploadBudget). */
export async function receiveJobUpload(request: FastifyRequest, store: JobStore, id: string, budget: Budget): Promise<JobUpload> {
  try {
    // The model's opset is read as it streams past, for the option rules that depend on it:
    // checked once the parts are in, before the job is committed (the route then deletes them).
    const scan = new OpsetScan();
    if (!request.isMultipart()) {
      const options = parseModelOptions(request.query as Record<string, unknown>, 'querystring');
      const model = await save(store, id, 'model', MODEL_FILE, request.body as Readable, budget, scan);
      if (model.size === 0) throw new Errors.Validation('send the model as the application/octet-stream body, or as the file part `model` of multipart/form-data');
      checkModelRequest(options, scan.defaultOpset, false);
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
      files.set(name, await save(store, id, name, file, part.file, budget, name === 'model' ? scan : undefined));
    }
    const model = files.get('model');
    if (!model) throw new Errors.Validation(`the multipart body has no file part named 'model' (parts: ${[...files.keys()].join(', ') || 'none'})`);
    const options = parseModelOptions({ ...(request.query as Record<string, unknown>), ...fields }, 'multipart');
    checkModelRequest(options, scan.defaultOpset, files.has('calibration'));
    const external = [...files.values()].filter((f) => f.name !== 'model' && f.name !== 'inputs' && f.name !== 'calibration');
    return { filename, model, external, inputs: files.get('inputs'), calibration: files.get('calibration'), options, bytes: budget.used };
  } catch (err) {
    throw uploadError(err, budget);
  }
}

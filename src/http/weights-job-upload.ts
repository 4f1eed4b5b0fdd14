import type { FastifyRequest } from 'fastify';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { parseSafetensorsHeader, safetensorsHeaderLength, MAX_HEADER_BYTES } from '../codecs/safetensors.js';
import { checkIndex, INDEX_FILENAME, MAX_CHECKPOINT_TENSORS, MAX_CONFIG_BYTES, MAX_INDEX_BYTES, MAX_SHARDS, mergeConfig, parseIndex, shardNameProblem } from '../checkpoints/index-file.js';
import { quantizationConfig } from '../checkpoints/layout.js';
import { Errors, isQuantError } from '../errors.js';
import { WEIGHTS_CONFIG_NAME } from '../jobs/model-files-task.js';
import type { JobStore, StoredFile } from '../jobs/types.js';
import type { WeightsTaskOptions } from '../pool/messages.js';
import { save, uploadError, type Budget } from './job-upload.js';
import { parseOptions } from './model-upload.js';
import { WeightsOptions } from './schemas/weights.js';

// A weights job's upload, streamed to the job store like a model job's: one .safetensors as
// the body, or multipart with `shard` file parts (each named by its file name), the `index`
// (model.safetensors.index.json) when there are several, an optional `config` (config.json)
// and option fields. Each shard's header is read as it streams past and checked against its
// length; the index is held against all of them before the job is committed, so a bad
// checkpoint is a 400 naming the shard and tensor, never a failed job.

export const WEIGHTS_INDEX_FILE = '__index__.json';
const CONFIG_FILE = '__config__.json';

export interface WeightsJobUpload {
  filename: string;
  /** The index when sharded, else the one shard. */
  model: StoredFile;
  /** The shards (sharded) and config.json. */
  external: StoredFile[];
  options: WeightsTaskOptions;
  bytes: number;
}

/** Passes a shard through, keeping its header; on end, checks the header against the shard's length. */
class HeaderProbe extends Transform {
  readonly #chunks: Buffer[] = [];
  #kept = 0;
  #need = -1;
  #total = 0;
  tensors: string[] = [];

  constructor(readonly shard: string) {
    super();
  }

  #fail(err: unknown): Error {
    if (isQuantError(err) && err.code === 'QUANT_ERR_SAFETENSORS') return new Errors.Safetensors(err.message.replace(/^safetensors: /, `safetensors: shard '${this.shard}': `));
    return err as Error;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.#total += chunk.length;
    if (this.#need < 0 || this.#kept < this.#need) {
      this.#chunks.push(chunk);
      this.#kept += chunk.length;
      if (this.#need < 0 && this.#kept >= 8) {
        try {
          // Bounded before the header is kept: the length alone is checked here, the rest at the end.
          this.#need = 8 + safetensorsHeaderLength(Buffer.concat(this.#chunks).subarray(0, 8), Number.MAX_SAFE_INTEGER, MAX_HEADER_BYTES);
        } catch (err) {
          done(this.#fail(err));
          return;
        }
      }
    }
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    try {
      const head = Buffer.concat(this.#chunks);
      const header = parseSafetensorsHeader(head.subarray(0, Math.max(0, Math.min(head.length, this.#need))), this.#total);
      this.tensors = header.tensors.map((t) => t.name);
      this.#chunks.length = 0;
      done();
    } catch (err) {
      done(this.#fail(err));
    }
  }
}

async function readSmall(source: Readable, limit: number, what: string, budget: Budget): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of source as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > limit) throw new Errors.BodyTooLarge(`${what} is over the limit of ${limit} bytes`);
    budget.take(chunk.length);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** The upload's file name as a shard name we may write: the sync endpoint's rule. */
function singleName(upload: string): string {
  const base = upload.split(/[\\/]/).pop() ?? '';
  const stem = base.replace(/\.safetensors$/i, '').replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._-]+/, '') || 'model';
  return `${stem.slice(0, 200)}.safetensors`;
}

async function storeBytes(store: JobStore, id: string, name: string, file: string, bytes: Buffer): Promise<StoredFile> {
  const w = await store.inputWriter(id, file);
  await new Promise<void>((resolve, reject) => {
    w.on('error', reject);
    w.end(bytes, () => resolve());
  });
  return { name, file, size: bytes.length };
}

export async function receiveWeightsUpload(request: FastifyRequest, store: JobStore, id: string, budget: Budget): Promise<WeightsJobUpload> {
  try {
    if (!request.isMultipart()) {
      const probe = new HeaderProbe('model.safetensors');
      const model = await save(store, id, 'model.safetensors', 'model.safetensors', request.body as Readable, budget, probe);
      if (model.size === 0) throw new Errors.Validation('send the .safetensors file as the body, or as `shard` file parts of multipart/form-data (with `index` when there are several)');
      const options = parseOptions(WeightsOptions, request.query as Record<string, unknown>, 'querystring');
      return { filename: 'model.safetensors', model, external: [], options, bytes: budget.used };
    }
    const fields: Record<string, unknown> = {};
    const shards = new Map<string, { stored: StoredFile; tensors: string[]; upload: string }>();
    let index: Buffer | undefined;
    let indexName = INDEX_FILENAME;
    let config: Buffer | undefined;
    let tensors = 0;
    for await (const part of request.parts()) {
      if (part.type === 'field') {
        if (part.fieldname in fields) throw new Errors.Validation(`multipart field '${part.fieldname}' is given twice`);
        fields[part.fieldname] = part.value;
        continue;
      }
      if (part.fieldname === 'index') {
        if (index) throw new Errors.Validation("multipart file part 'index' is given twice");
        index = await readSmall(part.file, MAX_INDEX_BYTES, `the index (${INDEX_FILENAME})`, budget);
        indexName = part.filename || indexName;
      } else if (part.fieldname === 'config') {
        if (config) throw new Errors.Validation("multipart file part 'config' is given twice");
        config = await readSmall(part.file, MAX_CONFIG_BYTES, 'config.json', budget);
      } else if (part.fieldname === 'shard') {
        const name = part.filename ?? '';
        const problem = shardNameProblem(name);
        if (problem) throw new Errors.Safetensors(`safetensors: file part 'shard': ${problem}`);
        if (shards.has(name)) throw new Errors.Safetensors(`safetensors: shard '${name}' is given twice`);
        if (shards.size >= MAX_SHARDS) throw new Errors.Safetensors(`safetensors: more than ${MAX_SHARDS} shards`);
        const probe = new HeaderProbe(name);
        const stored = await save(store, id, name, `shards/${name}`, part.file, budget, probe);
        tensors += probe.tensors.length;
        if (tensors > MAX_CHECKPOINT_TENSORS) throw new Errors.Safetensors(`safetensors: the shards hold more than ${MAX_CHECKPOINT_TENSORS} tensors`);
        shards.set(name, { stored, tensors: probe.tensors, upload: name });
      } else {
        throw new Errors.Validation(`unknown multipart file part '${part.fieldname}': send 'shard' (repeated, one per .safetensors file), 'index' and 'config'`);
      }
    }
    const options = parseOptions(WeightsOptions, { ...(request.query as Record<string, unknown>), ...fields }, 'multipart');
    if (shards.size === 0) throw new Errors.Validation(`the multipart body has no file part named 'shard' (send each .safetensors file as a 'shard' part)`);
    if (shards.size > 1 && !index) throw new Errors.Validation(`${shards.size} shards need their index: send ${INDEX_FILENAME} as the file part 'index'`);
    // Refused now rather than when the job ends: config.json must be a JSON object.
    if (config) mergeConfig(config, quantizationConfig(options, []));
    const external: StoredFile[] = [];
    let model: StoredFile;
    let filename: string;
    if (index) {
      checkIndex(parseIndex(index), new Map([...shards].map(([name, s]) => [name, s.tensors])));
      model = await storeBytes(store, id, 'index', WEIGHTS_INDEX_FILE, index);
      external.push(...[...shards.values()].map((s) => s.stored));
      filename = indexName;
    } else {
      const only = [...shards.values()][0]!;
      model = { ...only.stored, name: singleName(only.upload) };
      filename = only.upload;
    }
    if (config) external.push(await storeBytes(store, id, WEIGHTS_CONFIG_NAME, CONFIG_FILE, config));
    return { filename, model, external, options, bytes: budget.used };
  } catch (err) {
    throw uploadError(err, budget);
  }
}

import { Transform, type TransformCallback } from 'node:stream';
import { decodeOpset } from './decode.js';
import type { OpsetId } from './model.js';
import { WIRE_FIXED32, WIRE_FIXED64, WIRE_LEN, WIRE_VARINT } from './wire.js';

// The opset imports of a model that is being streamed somewhere (a job's upload), read as
// the bytes pass and without holding them: only ModelProto's top-level fields are walked,
// the graph (field 7, nearly all of the file) is skipped byte by byte, and only the small
// opset_import entries (field 8) are kept. Anything that is not a well-formed ModelProto
// top level just ends the scan: deciding that the model is bad is the decoder's job, later.

const OPSET_IMPORT = 8;
/** An OperatorSetIdProto is a domain name and a varint; past this it is not one worth reading. */
const MAX_ENTRY = 4096;
const MAX_ENTRIES = 1024;

type State = 'tag' | 'varint' | 'length' | 'skip' | 'keep' | 'stopped';

export class OpsetScan extends Transform {
  readonly #imports: OpsetId[] = [];
  #state: State = 'tag';
  #varint = 0;
  #shift = 0;
  #field = 0;
  #left = 0;
  #kept: Buffer[] = [];
  #keptBytes = 0;
  #complete = false;

  /** The opset imports, once the whole model has passed and its top level was well formed; else undefined. */
  get imports(): OpsetId[] | undefined {
    return this.#complete ? this.#imports : undefined;
  }

  /** The default domain's opset as decodeModel's callers see it (defaultOpset); undefined when unknown. */
  get defaultOpset(): number | undefined {
    return this.imports?.find((o) => o.domain === '' || o.domain === 'ai.onnx')?.version;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (this.#state !== 'stopped') this.#scan(chunk);
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    this.#complete = this.#state === 'tag';
    done();
  }

  #stop(): void {
    this.#state = 'stopped';
    this.#kept = [];
  }

  /** Accumulates one varint byte; true when the varint is complete. */
  #varintByte(byte: number): boolean {
    if (this.#shift > 49) {
      this.#stop();
      return false;
    }
    this.#varint += (byte & 0x7f) * 2 ** this.#shift;
    this.#shift += 7;
    return byte < 0x80;
  }

  #scan(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      switch (this.#state) {
        case 'tag':
        case 'varint':
        case 'length': {
          const byte = chunk[i++]!;
          if (!this.#varintByte(byte)) break;
          const v = this.#varint;
          this.#varint = 0;
          this.#shift = 0;
          if (this.#state === 'varint') this.#state = 'tag';
          else if (this.#state === 'length') this.#startField(v);
          else this.#tag(v);
          break;
        }
        case 'skip': {
          const n = Math.min(this.#left, chunk.length - i);
          i += n;
          this.#left -= n;
          if (this.#left === 0) this.#state = 'tag';
          break;
        }
        case 'keep': {
          const n = Math.min(this.#left, chunk.length - i);
          this.#kept.push(chunk.subarray(i, i + n));
          this.#keptBytes += n;
          i += n;
          this.#left -= n;
          if (this.#left === 0) this.#entry();
          break;
        }
        case 'stopped':
          return;
      }
    }
  }

  #tag(tag: number): void {
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    if (field === 0) return this.#stop();
    this.#field = field;
    if (wire === WIRE_VARINT) this.#state = 'varint';
    else if (wire === WIRE_LEN) this.#state = 'length';
    else if (wire === WIRE_FIXED64 || wire === WIRE_FIXED32) {
      this.#left = wire === WIRE_FIXED64 ? 8 : 4;
      this.#state = 'skip';
    } else this.#stop();
  }

  #startField(length: number): void {
    this.#left = length;
    if (this.#field === OPSET_IMPORT) {
      if (length > MAX_ENTRY || this.#imports.length >= MAX_ENTRIES) return this.#stop();
      this.#state = 'keep';
      if (length === 0) this.#entry();
    } else {
      this.#state = length === 0 ? 'tag' : 'skip';
    }
  }

  #entry(): void {
    const bytes = Buffer.concat(this.#kept, this.#keptBytes);
    this.#kept = [];
    this.#keptBytes = 0;
    try {
      this.#imports.push(decodeOpset(bytes));
      this.#state = 'tag';
    } catch {
      this.#stop();
    }
  }
}

import { closeSync, fstatSync, openSync, readFileSync, readSync, writeSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { encodeSafetensorsHeader, parseSafetensorsHeader, safetensorsHeaderLength, type SafetensorsHeader } from '../codecs/safetensors.js';
import { crc32 } from '../codecs/crc32.js';
import { checkElementLimits } from '../core/shape.js';
import type { Limits } from '../core/tensor.js';
import { Errors, isQuantError } from '../errors.js';
import { checkIndex, encodeIndex, INDEX_FILENAME, MAX_CHECKPOINT_TENSORS, MAX_SHARDS, mergeConfig, parseIndex, shardNameProblem, type CheckpointIndex } from './index-file.js';
import { planTensors, quantizationConfig, type CheckpointOptions, type PlannedTensor } from './layout.js';
import { buildCheckpointReport, outputMetadata, skippedOf, type CheckpointReport, type CheckpointTimings } from './quantize-checkpoint.js';
import { quantizeTensor, type CheckpointRow, type TensorTimes } from './quantize-tensor.js';
import type { ReserveFile } from '../onnx/io/write-model.js';

// A checkpoint on disk (one .safetensors, or shards and their index) → the pack-quantized
// checkpoint in a directory, tensor by tensor: only one weight (and its outputs) is in memory
// at a time, copied tensors go through in chunks. Every header is read and checked, and the
// index held against them, before anything is written. The bytes of each shard are exactly
// what quantizeCheckpoint returns for it.

const COPY_CHUNK = 8 * 2 ** 20;

export interface ShardFile {
  /** The shard's file name (as the index names it); the output keeps it. */
  name: string;
  path: string;
  /** What messages call it, when not its name (one file renamed on output). */
  label?: string | undefined;
}

export interface CheckpointFiles {
  shards: ShardFile[];
  /** model.safetensors.index.json, required with more than one shard. */
  index?: string | undefined;
  /** config.json, rewritten with quantization_config when given. */
  config?: string | undefined;
}

export interface WrittenFile {
  name: string;
  path: string;
  size: number;
  crc: number;
}

export interface CheckpointProgress {
  tensorsDone: number;
  tensorsTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

export interface CheckpointFilesResult {
  report: CheckpointReport;
  /** The index first (when there is one), then the shards in order, then config.json. */
  files: WrittenFile[];
  times: CheckpointTimings;
}

/** Errors in a shard name the shard. */
function inShard<T>(name: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (isQuantError(err) && err.code === 'QUANT_ERR_SAFETENSORS') throw new Errors.Safetensors(err.message.replace(/^safetensors: /, `safetensors: shard '${name}': `));
    throw err;
  }
}

function readAt(fd: number, length: number, position: number): Uint8Array {
  const buf = new Uint8Array(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, position + got);
    if (n === 0) throw new Errors.Safetensors(`safetensors: the file ended ${length - got} bytes early`);
    got += n;
  }
  return buf;
}

/** The checked header of a file on disk, reading only its first 8 + N bytes. */
export function readHeaderFile(path: string): { header: SafetensorsHeader; size: number } {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const first = readAt(fd, Math.min(8, size), 0);
    const n = safetensorsHeaderLength(first, size);
    const head = new Uint8Array(8 + n);
    head.set(first);
    head.set(readAt(fd, n, 8), 8);
    return { header: parseSafetensorsHeader(head, size), size };
  } finally {
    closeSync(fd);
  }
}

class Output {
  readonly fd: number;
  size = 0;
  crc = 0;
  constructor(readonly path: string) {
    this.fd = openSync(path, 'w');
  }
  write(bytes: Uint8Array): void {
    let at = 0;
    while (at < bytes.length) at += writeSync(this.fd, bytes, at, bytes.length - at);
    this.crc = crc32(bytes, this.crc);
    this.size += bytes.length;
  }
  close(): void {
    closeSync(this.fd);
  }
}

function writeWhole(dir: string, name: string, bytes: Uint8Array, reserve: ReserveFile | undefined): WrittenFile {
  reserve?.(name, bytes.length);
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return { name, path, size: bytes.length, crc: crc32(bytes) };
}

interface Shard {
  file: ShardFile;
  header: SafetensorsHeader;
  size: number;
  plan: PlannedTensor[];
}

/** Reads and checks every header and the index; refuses before any slow work. */
export function openCheckpoint(files: CheckpointFiles): { shards: Omit<Shard, 'plan'>[]; index: CheckpointIndex | undefined } {
  if (files.shards.length === 0) throw new Errors.Validation('no .safetensors shard was given');
  if (files.shards.length > MAX_SHARDS) throw new Errors.Safetensors(`safetensors: ${files.shards.length} shards, over the limit of ${MAX_SHARDS}`);
  if (files.shards.length > 1 && files.index === undefined) throw new Errors.Validation(`${files.shards.length} shards need their index (${INDEX_FILENAME})`);
  const names = new Set<string>();
  let tensors = 0;
  const shards = files.shards.map((file) => {
    const problem = shardNameProblem(file.name);
    if (problem && files.index !== undefined) throw new Errors.Safetensors(`safetensors: ${problem}`);
    if (names.has(file.name)) throw new Errors.Safetensors(`safetensors: shard '${file.name}' is given twice`);
    names.add(file.name);
    const { header, size } = inShard(file.label ?? file.name, () => readHeaderFile(file.path));
    tensors += header.tensors.length;
    if (tensors > MAX_CHECKPOINT_TENSORS) throw new Errors.Safetensors(`safetensors: the shards hold more than ${MAX_CHECKPOINT_TENSORS} tensors`);
    return { file, header, size };
  });
  let index: CheckpointIndex | undefined;
  if (files.index !== undefined) {
    index = parseIndex(readFileSync(files.index));
    checkIndex(index, new Map(shards.map((s) => [s.file.name, s.header.tensors.map((t) => t.name)])));
  }
  return { shards, index };
}

/**
 * Quantizes the checkpoint into `outDir`. `onTensor` runs between tensors (progress, and
 * cancellation: it may throw to stop); `reserve` is told each file's size before it is written.
 */
export function quantizeCheckpointFiles(
  files: CheckpointFiles,
  outDir: string,
  o: CheckpointOptions,
  limits: Limits,
  onTensor: (p: CheckpointProgress) => void = () => {},
  reserve?: ReserveFile,
): CheckpointFilesResult {
  const times: CheckpointTimings = { decode: 0, quantize: 0, encode: 0 };
  let t0 = performance.now();
  const opened = openCheckpoint(files);
  const all = new Set(opened.shards.flatMap((s) => s.header.tensors.map((t) => t.name)));
  const shards: Shard[] = opened.shards.map((s) => ({ ...s, plan: inShard(s.file.label ?? s.file.name, () => planTensors(s.header.tensors, o, all)) }));
  // Refused before writing: a weight over MAX_ELEMENTS.
  for (const s of shards) for (const p of s.plan) if (p.reason === undefined) checkElementLimits(p.t.shape, limits, `tensor '${p.t.name}'.shape`);
  const quantized = shards.flatMap((s) => s.plan.filter((p) => p.reason === undefined));
  const config = quantizationConfig(
    o,
    quantized.map((p) => p.module!),
  );
  const progress: CheckpointProgress = { tensorsDone: 0, tensorsTotal: quantized.length, bytesDone: 0, bytesTotal: quantized.reduce((s, p) => s + (p.t.end - p.t.begin), 0) };
  times.decode += performance.now() - t0;
  onTensor(progress);

  const written: WrittenFile[] = [];
  const rows: CheckpointRow[] = [];
  const weightMap = new Map<string, string>();
  const tensorTimes: TensorTimes = { decode: 0, quantize: 0 };
  let totalSize = 0;
  for (const s of shards) {
    const specs = s.plan.flatMap((p) => p.outputs);
    for (const spec of specs) weightMap.set(spec.name, s.file.name);
    t0 = performance.now();
    const { head, dataBytes } = encodeSafetensorsHeader(specs, outputMetadata(s.header.metadata, config));
    totalSize += dataBytes;
    reserve?.(s.file.name, head.length + dataBytes);
    const out = new Output(join(outDir, s.file.name));
    const input = openSync(s.file.path, 'r');
    try {
      out.write(head);
      times.encode += performance.now() - t0;
      for (const p of s.plan) {
        const length = p.t.end - p.t.begin;
        if (p.reason !== undefined) {
          t0 = performance.now();
          for (let at = 0; at < length; at += COPY_CHUNK) out.write(readAt(input, Math.min(COPY_CHUNK, length - at), p.t.begin + at));
          times.encode += performance.now() - t0;
          continue;
        }
        t0 = performance.now();
        const own = readAt(input, length, p.t.begin);
        tensorTimes.decode += performance.now() - t0;
        const q = inShard(s.file.label ?? s.file.name, () => quantizeTensor(own, p, o, limits, tensorTimes));
        t0 = performance.now();
        for (const d of q.data) out.write(d);
        times.encode += performance.now() - t0;
        rows.push(files.index !== undefined ? { ...q.row, file: s.file.name } : q.row);
        progress.tensorsDone++;
        progress.bytesDone += length;
        onTensor(progress);
      }
    } finally {
      closeSync(input);
      out.close();
    }
    written.push({ name: s.file.name, path: out.path, size: out.size, crc: out.crc });
  }
  times.decode += tensorTimes.decode;
  times.quantize += tensorTimes.quantize;
  t0 = performance.now();
  if (opened.index) written.unshift(writeWhole(outDir, INDEX_FILENAME, encodeIndex(opened.index, weightMap, totalSize), reserve));
  if (files.config !== undefined) written.push(writeWhole(outDir, 'config.json', mergeConfig(readFileSync(files.config), config), reserve));
  times.encode += performance.now() - t0;
  const inBytes = shards.reduce((n, s) => n + s.size, 0);
  const outBytes = written.filter((f) => f.name.endsWith('.safetensors')).reduce((n, f) => n + f.size, 0);
  const skipped = shards.flatMap((s) => skippedOf(s.plan, files.index !== undefined ? s.file.name : undefined));
  const report = buildCheckpointReport(o, { rows, skipped, tensorCount: all.size, files: shards.length, inBytes, outBytes, times, config });
  return { report, files: written, times };
}

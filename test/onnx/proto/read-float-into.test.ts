import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { FileExternalData } from '../../../src/onnx/io/files.js';
import { memoryExternalData } from '../../../src/onnx/io/external.js';
import { DataType, type OnnxTensor } from '../../../src/onnx/proto/model.js';
import { readFloat, readFloatInto } from '../../../src/onnx/proto/tensor-data.js';
import { align64, ARENA_BASE, createArena } from '../../../src/core/kernels/runtime.js';

// readFloatInto (the model path's weight scratch) gives readFloat's values, bit for bit (in a
// kernel arena, where widen.wat converts, and outside one), for
// every float type the model path quantizes, inline or external (from memory, or read from a
// file straight into the array), and refuses what readFloat refuses.

function bitsOf(x: Float32Array): Uint32Array {
  return new Uint32Array(x.buffer, x.byteOffset, x.length);
}

/** Every 16-bit pattern, so every half and bfloat16 value (NaNs, infinities, subnormals) is read. */
const all16 = new Uint8Array(new Uint16Array(65536).map((_, i) => i).buffer);
const f32 = new Uint8Array(new Float32Array([0, -0, 1.5, -3.25e-39, 3.4e38, -1e-7, 42, Math.PI]).buffer);

function inline(dataType: number, raw: Uint8Array, n: number, offset = 0): OnnxTensor {
  // raw_data at an odd offset, as a view into an upload can be.
  const buf = new Uint8Array(raw.length + offset);
  buf.set(raw, offset);
  return { name: 'w', dims: [n], dataType, rawData: buf.subarray(offset), dataLocation: 0, externalData: [] };
}

function external(dataType: number, n: number, at: number, length: number): OnnxTensor {
  return {
    name: 'w',
    dims: [n],
    dataType,
    dataLocation: 1,
    externalData: [
      { key: 'location', value: 'w.bin' },
      { key: 'offset', value: String(at) },
      { key: 'length', value: String(length) },
    ],
  };
}

/** A float area and room for the raw bytes after it, in one kernel arena (as the weight scratch has them: the widening kernel runs). */
function arenaPair(n: number): [Float32Array, Uint8Array] {
  const memory = createArena(4 * n, 2 * n + 64);
  assert.ok(memory, 'an arena');
  return [new Float32Array(memory.buffer, ARENA_BASE, n).fill(7), new Uint8Array(memory.buffer, ARENA_BASE + align64(4 * n), 2 * n)];
}

function same(t: OnnxTensor, ext?: Parameters<typeof readFloat>[1]): void {
  const want = readFloat(t, ext);
  const plain: [Float32Array, Uint8Array] = [new Float32Array(want.length).fill(7), new Uint8Array(2 * want.length + 2).subarray(2)];
  for (const [got, room] of [plain, arenaPair(want.length)]) {
    readFloatInto(t, ext, got, room);
    sameBits(t, want, got);
  }
}

function sameBits(t: OnnxTensor, want: Float32Array, got: Float32Array): void {
  const w = bitsOf(want);
  const g = bitsOf(got);
  for (let i = 0; i < want.length; i++) {
    // NaN is NaN (readFloat's NaNs come out of arithmetic; the payload is not a value).
    if (Number.isNaN(want[i])) assert.ok(Number.isNaN(got[i]), `element ${i} is NaN`);
    else if (g[i] !== w[i]) assert.fail(`${t.dataType}: element ${i}: ${got[i]} (0x${g[i]!.toString(16)}), want ${want[i]} (0x${w[i]!.toString(16)})`);
  }
}

test('readFloatInto: inline float32, float16 and bfloat16, at unaligned offsets', () => {
  same(inline(DataType.float32, f32, 8, 1));
  same(inline(DataType.float16, all16, 65536, 3));
  same(inline(DataType.bfloat16, all16, 65536, 1));
  // Past the 1 MiB pieces an unaligned source is copied into an arena in.
  const many = new Float32Array(300_001).map((_, i) => Math.sin(i) * 1e3);
  same(inline(DataType.float32, new Uint8Array(many.buffer), many.length, 3));
  // A count off the kernel's steps of 8: the last values by the loop.
  same(inline(DataType.float16, all16.subarray(0, 2 * 8197), 8197, 1));
  same(inline(DataType.bfloat16, all16.subarray(0, 2 * 8197), 8197));
});

test('readFloatInto: external data from memory and from a file read straight in', () => {
  const file = new Uint8Array(5 + all16.length + f32.length);
  file.set(all16, 5);
  file.set(f32, 5 + all16.length);
  const dir = mkdtempSync(join(tmpdir(), 'quantd-rfi-'));
  const disk = new FileExternalData(new Map([['w.bin', join(dir, 'w.bin')]]));
  try {
    writeFileSync(join(dir, 'w.bin'), file);
    for (const ext of [memoryExternalData(new Map([['w.bin', file]])), disk]) {
      same(external(DataType.float16, 65536, 5, all16.length), ext);
      same(external(DataType.bfloat16, 65536, 5, all16.length), ext);
      same(external(DataType.float32, 8, 5 + all16.length, f32.length), ext);
    }
    // A length that does not match the dims, or a range past the file's end: readFloat's errors.
    const into = new Float32Array(8);
    const room = new Uint8Array(16);
    assert.throws(() => readFloatInto(external(DataType.float32, 8, 0, 31), disk, into, room), /does not match 8 float32 values/);
    assert.throws(() => readFloatInto(external(DataType.float32, 8, file.length - 8, 32), disk, into, room), /past its end/);
    assert.throws(() => readFloatInto(external(DataType.float32, 8, 0, 32), undefined, into, room), /which was not uploaded/);
    assert.throws(() => readFloatInto(inline(DataType.int8, new Uint8Array(8), 8), undefined, into, room), /not a float type/);
  } finally {
    disk.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

import { align64, ARENA_BASE, ARENA_TAIL, arenaOf, createArena, LAYOUT, resetArena, type WasmMemory } from './runtime.js';

// Where big tensor bodies are allocated: kernel arenas (runtime.ts), with room after the
// tensor for what is computed from it (arenaAlloc), recycled through a per-thread cache. An
// arena is shared memory, which V8 frees only after every thread that saw it has collected
// its handle, and V8 does not count it as external memory that prompts a collection: a fresh
// arena per request kept RSS climbing by a tensor per request. Arenas whose user is done
// (recycleArena) are reused for the next tensor of a similar size instead. Only the event
// loop makes arenas (for request bodies); a worker's own allocations stay ordinary buffers,
// which is also what prompts V8 to collect a request's garbage there.

/** Tensors from this size on get an arena; smaller ones gain nothing from it. */
export const ARENA_MIN_BYTES = 1 << 20;

/** The room tensorBytes keeps after a tensor: its integers in 16-bit containers if it is float32, and their 4-bit packing. */
function spareFor(bytes: number): number {
  return Math.ceil(bytes / 2) + Math.ceil(bytes / 8) + 128;
}

/**
 * `bytes` bytes (uninitialised: an arena may be reused), 64-byte aligned, in the arena `near`
 * lives in, after everything allocated there so far; null when `near` is in no arena or it
 * has no room left. Nothing is freed on its own: the arena goes, or is reused, as a whole.
 * One thread at a time uses an arena.
 */
export function arenaAlloc(near: ArrayBufferView, bytes: number): Uint8Array | null {
  if (!arenaOf(near)) return null;
  const top = new Int32Array(near.buffer, LAYOUT.top, 1);
  const at = top[0]!;
  if (!(bytes >= 0 && at + bytes + ARENA_TAIL <= near.buffer.byteLength)) return null;
  top[0] = at + align64(bytes);
  return new Uint8Array(near.buffer, at, bytes);
}

/** This thread's idle arenas, newest first, and the bound on their bytes. */
const idle: WasmMemory[] = [];
let idleBytes = 0;
let maxIdleBytes = 0;

/** Sets the bytes of idle arenas this thread keeps (ARENA_CACHE_BYTES); 0 keeps none. */
export function setArenaCacheBytes(bytes: number): void {
  maxIdleBytes = bytes;
  trim(0);
}

/** Bytes of idle arenas this thread keeps now. */
export function arenaCacheBytes(): number {
  return idleBytes;
}

function trim(incoming: number): void {
  while (idle.length > 0 && idleBytes + incoming > maxIdleBytes) idleBytes -= idle.pop()!.buffer.byteLength;
}

/**
 * Gives an arena back for reuse: its user is done and nothing else will touch it (a worker
 * task that finished, a request whose task returned). The oldest idle arenas go first when
 * the bound would be passed.
 */
export function recycleArena(memory: WasmMemory): void {
  const size = memory.buffer.byteLength;
  if (idle.includes(memory) || size > maxIdleBytes) return;
  trim(size);
  idle.unshift(memory);
  idleBytes += size;
}

/** An idle arena that fits a tensor of `bytes` and its room without being over twice that. */
function reuse(bytes: number): Uint8Array | null {
  const need = ARENA_BASE + align64(bytes) + align64(spareFor(bytes)) + ARENA_TAIL;
  const at = idle.findIndex((m) => m.buffer.byteLength >= need && m.buffer.byteLength <= 2 * need);
  if (at < 0) return null;
  const [memory] = idle.splice(at, 1) as [WasmMemory];
  idleBytes -= memory.buffer.byteLength;
  resetArena(memory, ARENA_BASE + align64(bytes));
  return new Uint8Array(memory.buffer, ARENA_BASE, bytes);
}

/**
 * `bytes` bytes for a tensor (uninitialised): in an arena when the tensor is big enough (an
 * idle one of a similar size, else a new one) and one can be had, else an ordinary buffer.
 */
export function tensorBytes(bytes: number): Uint8Array {
  if (bytes >= ARENA_MIN_BYTES) {
    const reused = reuse(bytes);
    const memory = reused ? null : createArena(bytes, spareFor(bytes));
    const out = reused ?? (memory ? new Uint8Array(memory.buffer, ARENA_BASE, bytes) : null);
    if (out) return out;
  }
  const buf = Buffer.allocUnsafeSlow(bytes);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** n float32 values (uninitialised: the caller writes every one), in an arena when big enough. */
export function tensorFloats(n: number): Float32Array {
  const bytes = tensorBytes(n * 4);
  return new Float32Array(bytes.buffer, bytes.byteOffset, n);
}

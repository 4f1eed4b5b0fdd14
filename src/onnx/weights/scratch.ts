import { align64, ARENA_BASE, createArena, resetArena, type WasmMemory } from '../../core/kernels/runtime.js';

// One weight's working memory, reused weight after weight: its float values, the integers
// quantize() writes beside them, the 4-bit packing's tiles, and a float16 tensor's raw bytes
// before they widen. It is a kernel arena, so the kernels read the values where they are
// (no staging copies) and nothing per weight is garbage. A fresh float copy and integer array
// per weight cost the 4-bit model path 14 % in garbage collection.

/** Room after the floats, per element: a float16 tensor's 2 bytes, or 1-byte integers and their 4-bit packing. */
const SPARE_PER_ELEMENT = 2.5;
/** A scratch of at most this size is kept for the thread's next model; a bigger one goes after its model. */
const KEEP_BYTES = 64 * 2 ** 20;

let kept: WeightScratch | undefined;

export class WeightScratch {
  readonly memory: WasmMemory;
  /** Elements the float area holds. */
  readonly capacity: number;

  private constructor(memory: WasmMemory, capacity: number) {
    this.memory = memory;
    this.capacity = capacity;
  }

  /** A scratch for weights of up to `elements` values, or undefined when no arena can be had. */
  static take(elements: number): WeightScratch | undefined {
    if (kept && kept.capacity >= elements) {
      const s = kept;
      kept = undefined;
      return s;
    }
    const memory = createArena(4 * elements, Math.ceil(SPARE_PER_ELEMENT * elements) + 1024);
    return memory ? new WeightScratch(memory, elements) : undefined;
  }

  /** Hands a scratch back at the end of a model: small ones are kept for the next. */
  static release(s: WeightScratch): void {
    if (s.memory.buffer.byteLength <= KEEP_BYTES && (!kept || kept.capacity < s.capacity)) kept = s;
  }

  /**
   * The float area for a weight of n values, after forgetting everything handed out before
   * (the integers of the last weight included): a caller keeping those copies them first.
   */
  floats(n: number): Float32Array {
    if (n > this.capacity) throw new RangeError(`a weight of ${n} values does not fit a scratch of ${this.capacity}`);
    resetArena(this.memory, ARENA_BASE + align64(4 * n));
    return new Float32Array(this.memory.buffer, ARENA_BASE, n);
  }

  /** n bytes right after the float area of `floats(elements)`, not allocated (the next allocation reuses them). */
  after(elements: number, n: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, ARENA_BASE + align64(4 * elements), n);
  }

  owns(view: ArrayBufferView): boolean {
    return view.buffer === this.memory.buffer;
  }
}

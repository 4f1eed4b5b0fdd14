import { readFileSync } from 'node:fs';

// The WebAssembly kernels: seven small modules compiled from the .wat files beside this one
// (by scripts/build-wasm.ts, part of `npm run build`), sharing one linear memory. Each
// thread has a fixed 1.8 MiB memory of its own (the LAYOUT below) into which kernel calls
// stage at most CHUNK elements of a tensor held in a JavaScript typed array; the memory never
// grows, so views on it never detach. A tensor can instead live in an arena (createArena):
// a shared memory with the same layout in front and the tensor after it, which the HTTP
// layer reads request bodies into. Kernels on an arena read the tensor where it is, without
// staging copies, and the arena is garbage like any buffer once the request is done.

/** Elements staged per kernel call: 256 KiB of float32. */
export const CHUNK = 1 << 16;

/** Byte offsets of the blocks in the kernels' memory (see the .wat files for their layouts). */
export const LAYOUT = (() => {
  const area = CHUNK * 4 + 64; // + room for whole-vector writes past the last element
  const x = 1024;
  return {
    /** quantize.wat constant block */
    k: 0,
    /** dequantize.wat constant block */
    kd: 128,
    /** quantize.wat accumulators */
    acc: 256,
    /** An arena's allocation top: the byte offset of its first free byte (i32). */
    top: 1016,
    x,
    q: x + area,
    /** five parameter areas of CHUNK 32-bit values each */
    p: [x + 2 * area, x + 3 * area, x + 4 * area, x + 5 * area, x + 6 * area] as const,
    bytes: x + 7 * area,
  };
})();

export interface QuantizeExports {
  runs(mode: number, x: number, q: number, rows: number, runs: number, runLen: number, lastLen: number,
    ps: number, pz: number, prow: number, qMin: number, qMax: number, bias: number, k: number, acc: number): void;
  prep(pz: number, plo: number, phi: number, pmz: number, n: number, qMin: number, qMax: number, bias: number): void;
  rows(mode: number, x: number, q: number, rows: number, len: number,
    ps: number, pz: number, plo: number, phi: number, pmz: number, k: number, acc: number): void;
  params(ps: number, pz: number, lo: number, hi: number, sym: number, qMin: number, qMax: number): void;
  fused(mode: number, sym: number, x: number, q: number, rows: number, runs: number, runLen: number, lastLen: number,
    ps: number, pz: number, prow: number, qMin: number, qMax: number, bias: number, k: number, acc: number, plo: number, phi: number): void;
  paramsmany(plo: number, phi: number, ps: number, pz: number, n: number, sym: number, qMin: number, qMax: number): void;
  groups(mode: number, sym: number, x: number, q: number, ng: number, g: number, ps: number, pz: number, qMin: number, qMax: number, bias: number, k: number, acc: number): void;
}

export interface CalibrateExports {
  runs(x: number, rows: number, runs: number, runLen: number, lastLen: number, plo: number, phi: number, prow: number): void;
  rows(x: number, rows: number, len: number, lo: number, hi: number): void;
  nans(x: number, n: number): number;
  nonfinite(x: number, n: number): number;
}

export interface DequantizeExports {
  runs(x: number, q: number, rows: number, runs: number, runLen: number, lastLen: number, ps: number, pz: number, prow: number, k: number): void;
  rows(x: number, q: number, rows: number, len: number, ps: number, pzf: number, k: number): void;
}

export interface PackExports {
  pack4(src: number, dst: number, blocks: number): void;
  pack2(src: number, dst: number, blocks: number): void;
  unpack4(src: number, dst: number, blocks: number, signed: number): void;
  unpack2(src: number, dst: number, blocks: number, signed: number): void;
}

export interface MseExports {
  sse(x: number, n: number, k: number, acc: number): void;
  sseMany(x: number, n: number, cands: number, count: number, acc: number): void;
  candidates(rs: number, count: number, lo: number, hi: number, sym: number, qMin: number, qMax: number, cands: number, tmp: number): void;
  hist(x: number, n: number, lo: number, inv: number, bins: number, counts: number): void;
  hscore(counts: number, bins: number, lo: number, w: number, k: number): number;
}

export interface LsqExports {
  lsq(units: number, n: number, vals: number, offs: number, lo: number, hi: number, rs: number, rz: number,
    os: number, oz: number, tab: number, count: number, sym: number, qMin: number, qMax: number, rounds: number, neighbours: number,
    neighbourRounds: number, c1: number, c2: number, u: number): void;
  /** Unit passes so far: candidate passes (two candidates each) and scorings (counters for the bench). */
  scans: { value: number };
  scorings: { value: number };
}

export interface HqqExports {
  hqq(units: number, n: number, vals: number, offs: number, rs: number, rz: number, os: number, oz: number,
    tab: number, iters: number, mid: number, sym: number, qMin: number, qMax: number, u: number): void;
  /** Unit passes and vectors whose power was taken so far (counters for the bench). */
  passes: { value: number };
  powers: { value: number };
}

export interface Kernels {
  /** The memory's buffer: a view on it is resident (kernels read it in place). */
  buffer: ArrayBufferLike;
  quantize: QuantizeExports;
  mse: MseExports;
  lsq: LsqExports;
  hqq: HqqExports;
  calibrate: CalibrateExports;
  dequantize: DequantizeExports;
  pack: PackExports;
  u8: Uint8Array;
  i32: Int32Array;
  f32: Float32Array;
  f64: Float64Array;
}

// The WebAssembly global as far as this file uses it (the project compiles without lib.dom,
// where its types live).
export interface WasmMemory {
  buffer: ArrayBufferLike;
}
interface WasmApi {
  Memory: new (descriptor: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

const PAGE = 65536;
/** Pages a wasm32 memory can have (4 GiB), the maximum the .wat files declare. */
const MAX_PAGES = 65536;
/** Where an arena's tensor starts: after the kernels' layout, 64-byte aligned. */
export const ARENA_BASE = Math.ceil(LAYOUT.bytes / 64) * 64;
/** Slack after an arena's last allocation: kernels may read a whole vector past an end. */
export const ARENA_TAIL = 64;
export const align64 = (n: number) => Math.ceil(n / 64) * 64;
/** The largest tensor (bytes) an arena can hold. */
const MAX_ARENA_BYTES = MAX_PAGES * PAGE - ARENA_BASE - ARENA_TAIL;

const modules = new Map<string, object>();

/** `name` compiled for an ordinary memory, or with `.shared` for an arena (see build-wasm.ts). */
function compiled(name: string): object {
  let module = modules.get(name);
  if (module) return module;
  const url = new URL(`./${name}.wasm`, import.meta.url);
  let bytes: Buffer;
  try {
    bytes = readFileSync(url);
  } catch (err) {
    throw new Error(`the WebAssembly kernel ${url.pathname} is missing; \`npm run build\` compiles it`, { cause: err });
  }
  module = new wasm.Module(bytes);
  modules.set(name, module);
  return module;
}

function kernelsOn(memory: WasmMemory, shared: boolean): Kernels {
  const instantiate = <T>(name: string, env: object = {}): T =>
    new wasm.Instance(compiled(shared ? `${name}.shared` : name), { env: { memory, ...env } }).exports as T;
  const buf = memory.buffer;
  const quantize = instantiate<QuantizeExports>('quantize');
  return {
    buffer: buf,
    quantize,
    calibrate: instantiate<CalibrateExports>('calibrate'),
    dequantize: instantiate<DequantizeExports>('dequantize'),
    pack: instantiate<PackExports>('pack'),
    // mse.wat makes its candidates with quantize.wat's paramsFromRange.
    mse: instantiate<MseExports>('mse', { params: quantize.params }),
    lsq: instantiate<LsqExports>('lsq'),
    hqq: instantiate<HqqExports>('hqq'),
    u8: new Uint8Array(buf),
    i32: new Int32Array(buf),
    f32: new Float32Array(buf),
    f64: new Float64Array(buf),
  };
}

/** Kernels outside the five above (a .wat each, run on arenas only), by arena and name. */
const arenaOnly = new WeakMap<WasmMemory, Map<string, unknown>>();

/** `name`.wat's exports instantiated on an arena's memory (once per arena). */
export function arenaKernel<T>(name: string, memory: WasmMemory): T {
  let byName = arenaOnly.get(memory);
  if (!byName) arenaOnly.set(memory, (byName = new Map()));
  let k = byName.get(name) as T | undefined;
  if (!k) {
    k = new wasm.Instance(compiled(`${name}.shared`), { env: { memory } }).exports as T;
    byName.set(name, k);
  }
  return k;
}

/** `name`.wat instantiated on a memory of its own (not shared, `pages` pages, never grown). */
export function privateKernel<T>(name: string, pages: number): { memory: WasmMemory; exports: T } {
  const memory = new wasm.Memory({ initial: pages, maximum: pages });
  return { memory, exports: new wasm.Instance(compiled(name), { env: { memory } }).exports as T };
}

let kernels: Kernels | undefined;

/** This thread's kernels, instantiated on first use (module compilation is synchronous and ~1 ms). */
export function getKernels(): Kernels {
  kernels ??= kernelsOn(new wasm.Memory({ initial: Math.ceil(LAYOUT.bytes / PAGE) }), false);
  return kernels;
}

/** Arenas this thread knows, by buffer, and their kernels once a kernel has run on one. */
const arenas = new WeakMap<ArrayBufferLike, WasmMemory>();
const arenaKernels = new WeakMap<WasmMemory, Kernels>();

/** Sets where an arena's allocations start (see arenas.ts) and registers it in this thread. */
export function resetArena(memory: WasmMemory, top: number): void {
  new Int32Array(memory.buffer, LAYOUT.top, 1)[0] = top;
  arenas.set(memory.buffer, memory);
}

/**
 * A new arena for a tensor of `bytes` bytes plus `spare` bytes for what is computed from it
 * (arenaAlloc), or null when it cannot have one (too big for a 32-bit memory, or the engine
 * refuses the memory). Its tensor bytes are `new Uint8Array(arena.buffer, ARENA_BASE, bytes)`.
 * Pages never written cost address space only, not memory. The memory is shared, so it can
 * be posted to a worker, which gives it to adoptArena.
 */
export function createArena(bytes: number, spare = 0): WasmMemory | null {
  if (!(bytes >= 0 && bytes <= MAX_ARENA_BYTES)) return null;
  const size = Math.min(MAX_PAGES * PAGE, ARENA_BASE + align64(bytes) + align64(spare) + ARENA_TAIL);
  let memory: WasmMemory;
  try {
    const pages = Math.ceil(size / PAGE);
    memory = new wasm.Memory({ initial: pages, maximum: pages, shared: true });
  } catch {
    return null; // address space or memory refused: the caller uses a plain buffer
  }
  resetArena(memory, ARENA_BASE + align64(bytes));
  return memory;
}

/** Registers an arena that arrived from another thread; returns its buffer in this thread. */
export function adoptArena(memory: WasmMemory): ArrayBufferLike {
  const buf = memory.buffer;
  arenas.set(buf, memory);
  return buf;
}

/** The arena `view` lives in, if any. */
export function arenaOf(view: ArrayBufferView): WasmMemory | undefined {
  return arenas.get(view.buffer);
}

/** The kernels to run on `view`: its arena's when it lives in one, else this thread's. */
export function kernelsFor(view: ArrayBufferView): Kernels {
  const memory = arenas.get(view.buffer);
  if (!memory) return getKernels();
  let k = arenaKernels.get(memory);
  if (!k) {
    k = kernelsOn(memory, true);
    arenaKernels.set(memory, k);
  }
  return k;
}

/**
 * The kernels' address of elements [start, start + count) of x: where they are when x lives
 * in the kernels' memory, else after staging them at `at`.
 */
export function stage(k: Kernels, x: Float32Array | Uint8Array, start: number, count: number, at: number): number {
  const width = x.BYTES_PER_ELEMENT;
  if (x.buffer === k.buffer) return x.byteOffset + start * width;
  if (width === 4) k.f32.set(x.subarray(start, start + count), at >> 2);
  else k.u8.set(x.subarray(start, start + count), at);
  return at;
}

import { readFileSync } from 'node:fs';

// The WebAssembly kernels of this thread: five small modules compiled from the .wat files
// beside this one (by scripts/build-wasm.ts, part of `npm run build`), sharing one fixed
// linear memory. Tensors stay in JavaScript typed arrays; each kernel call stages at most
// CHUNK elements into that memory, which keeps the staging buffers in L2 and means the
// memory never grows (views on it never detach) whatever the tensor size.

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
  fused(mode: number, sym: number, x: number, q: number, rows: number, runs: number, runLen: number, lastLen: number,
    ps: number, pz: number, prow: number, qMin: number, qMax: number, bias: number, k: number, acc: number): void;
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
  hist(x: number, n: number, lo: number, inv: number, bins: number, counts: number): void;
  hscore(counts: number, bins: number, lo: number, w: number, k: number): number;
}

export interface Kernels {
  quantize: QuantizeExports;
  mse: MseExports;
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
interface WasmMemory {
  buffer: ArrayBuffer;
}
interface WasmApi {
  Memory: new (descriptor: { initial: number }) => WasmMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

let kernels: Kernels | undefined;

function instantiate<T>(name: string, memory: WasmMemory): T {
  const url = new URL(`./${name}.wasm`, import.meta.url);
  let bytes: Buffer;
  try {
    bytes = readFileSync(url);
  } catch (err) {
    throw new Error(`the WebAssembly kernel ${url.pathname} is missing; \`npm run build\` compiles it`, { cause: err });
  }
  return new wasm.Instance(new wasm.Module(bytes), { env: { memory } }).exports as T;
}

/** This thread's kernels, instantiated on first use (module compilation is synchronous and ~1 ms). */
export function getKernels(): Kernels {
  if (kernels) return kernels;
  const memory = new wasm.Memory({ initial: Math.ceil(LAYOUT.bytes / 65536) });
  const buf = memory.buffer;
  kernels = {
    quantize: instantiate<QuantizeExports>('quantize', memory),
    calibrate: instantiate<CalibrateExports>('calibrate', memory),
    dequantize: instantiate<DequantizeExports>('dequantize', memory),
    pack: instantiate<PackExports>('pack', memory),
    mse: instantiate<MseExports>('mse', memory),
    u8: new Uint8Array(buf),
    i32: new Int32Array(buf),
    f32: new Float32Array(buf),
    f64: new Float64Array(buf),
  };
  return kernels;
}

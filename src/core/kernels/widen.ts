import { readFileSync } from 'node:fs';
import { arenaOf, type WasmMemory } from './runtime.js';

// float16 / bfloat16 → float32 with widen.wat where both arrays live in one kernel arena (the
// model path's weight scratch reads a float16 weight's bytes beside its float area); the
// caller converts whatever this does not (returns the count done).

interface WidenExports {
  halves(src: number, dst: number, n: number): void;
  bfloats(src: number, dst: number, n: number): void;
}

interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

let module: object | undefined;
function compiled(): object {
  if (module) return module;
  const url = new URL('./widen.shared.wasm', import.meta.url);
  let bytes: Buffer;
  try {
    bytes = readFileSync(url);
  } catch (err) {
    throw new Error(`the WebAssembly kernel ${url.pathname} is missing; \`npm run build\` compiles it`, { cause: err });
  }
  module = new wasm.Module(bytes);
  return module;
}

const instances = new WeakMap<WasmMemory, WidenExports>();

/** Widens the first values of h into out (same arena only) in whole steps of 8; returns how many. */
export function widenKernel(h: Uint16Array, out: Float32Array, bfloat16: boolean): number {
  const memory = arenaOf(h);
  if (!memory || out.buffer !== h.buffer || out.length < h.length) return 0;
  let k = instances.get(memory);
  if (!k) {
    k = new wasm.Instance(compiled(), { env: { memory } }).exports as WidenExports;
    instances.set(memory, k);
  }
  const n = h.length - (h.length % 8);
  (bfloat16 ? k.bfloats : k.halves)(h.byteOffset, out.byteOffset, n);
  return n;
}

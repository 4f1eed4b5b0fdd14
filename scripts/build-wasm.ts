import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import wabt from 'wabt';

// Compiles the WebAssembly kernels (src/core/kernels/*.wat) next to their compiled
// TypeScript loaders in dist/, where src/core/kernels/runtime.ts reads them at run time.
// Part of `npm run build`, so `npm start` and `npm test` never need an extra step.
// Each kernel is built twice: `name.wasm` imports an ordinary memory (a thread's own), and
// `name.shared.wasm` a shared one (an arena). Both are needed: an import must match the
// memory's sharedness, and V8 copies typed arrays on shared memory with relaxed atomics,
// several times slower, so a thread's staging memory is better left unshared.
const src = new URL('../../src/core/kernels/', import.meta.url);
const out = new URL('../../dist/src/core/kernels/', import.meta.url);
const features = { simd: true, sat_float_to_int: true, sign_extension: true, threads: true };
const MEMORY = '(import "env" "memory" (memory 1))';
const SHARED = '(import "env" "memory" (memory 1 65536 shared))';

const toolkit = await wabt();
mkdirSync(out, { recursive: true });

function compile(file: string, text: string, target: string): void {
  const module = toolkit.parseWat(file, text, features);
  try {
    // wabt's typings leave out validate's features; without them it refuses shared memories.
    (module as unknown as { validate(f: typeof features): void }).validate(features);
    writeFileSync(new URL(target, out), module.toBinary({}).buffer);
  } finally {
    module.destroy();
  }
}

for (const file of readdirSync(src).filter((f) => f.endsWith('.wat')).sort()) {
  const text = readFileSync(new URL(file, src), 'utf8');
  if (text.split(MEMORY).length !== 2) throw new Error(`${file} must import its memory exactly as ${MEMORY}`);
  compile(file, text, file.replace(/\.wat$/, '.wasm'));
  compile(file, text.replace(MEMORY, SHARED), file.replace(/\.wat$/, '.shared.wasm'));
}

import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import wabt from 'wabt';

// Compiles the WebAssembly kernels (src/core/kernels/*.wat) next to their compiled
// TypeScript loaders in dist/, where src/core/kernels/runtime.ts reads them at run time.
// Part of `npm run build`, so `npm start` and `npm test` never need an extra step.
const src = new URL('../../src/core/kernels/', import.meta.url);
const out = new URL('../../dist/src/core/kernels/', import.meta.url);
const features = { simd: true, sat_float_to_int: true, sign_extension: true, threads: true };

const toolkit = await wabt();
mkdirSync(out, { recursive: true });
for (const file of readdirSync(src).filter((f) => f.endsWith('.wat')).sort()) {
  const module = toolkit.parseWat(file, readFileSync(new URL(file, src), 'utf8'), features);
  try {
    // wabt's typings leave out validate's features; without them it refuses shared memories.
    (module as unknown as { validate(f: typeof features): void }).validate(features);
    writeFileSync(new URL(file.replace(/\.wat$/, '.wasm'), out), module.toBinary({}).buffer);
  } finally {
    module.destroy();
  }
}

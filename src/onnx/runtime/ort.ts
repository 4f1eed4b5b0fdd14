import { createRequire } from 'node:module';

// onnxruntime-node is loaded on first use: workers that only quantize tensors never pay
// for the native library.

type Ort = typeof import('onnxruntime-node');

let loading: Promise<Ort> | undefined;

export function loadOrt(): Promise<Ort> {
  loading ??= import('onnxruntime-node');
  return loading;
}

let loaded: Ort | undefined;

/**
 * The same module, loaded synchronously on first use: for code that must build onnxruntime
 * tensors outside an async function (calibration samples). onnxruntime-node is CommonJS, so
 * require() and import() share one instance and its tensors are the ones sessions take.
 */
export function ortSync(): Ort {
  loaded ??= createRequire(import.meta.url)('onnxruntime-node') as Ort;
  return loaded;
}

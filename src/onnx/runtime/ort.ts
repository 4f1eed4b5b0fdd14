// onnxruntime-node is loaded on first use: workers that only quantize tensors never pay
// for the native library.

type Ort = typeof import('onnxruntime-node');

let loading: Promise<Ort> | undefined;

export function loadOrt(): Promise<Ort> {
  loading ??= import('onnxruntime-node');
  return loading;
}

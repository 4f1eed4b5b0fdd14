/** Cosine similarity of two outputs, in float64 (the tests' measure of a quantized model against the float one); two all-zero outputs agree: 1. */
export function cosine(a: Float64Array, b: Float64Array): number {
  let dot = 0;
  let a2 = 0;
  let b2 = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    a2 += a[i]! ** 2;
    b2 += b[i]! ** 2;
  }
  return a2 === 0 && b2 === 0 ? 1 : dot / Math.sqrt(a2 * b2);
}

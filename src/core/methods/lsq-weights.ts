// What data-free lsq's squared error weighs each element by. `mse` (the default) weighs all
// alike. `magnitude` is llama.cpp's data-free Q4_K (quantize_row_q4_K_ref in
// ggml/src/ggml-quants.c): w_i = av_x + |x_i|, av_x = sqrt(Σx²/n) over the group, given to
// make_qkx2_quants. It trades error on the small weights for less on the large ones, which
// carry more of a layer's output when the inputs are of similar size.

export const LSQ_WEIGHTINGS = ['mse', 'magnitude'] as const;
export type LsqWeighting = (typeof LSQ_WEIGHTINGS)[number];

/** The `magnitude` weights of one group (float32, as llama.cpp keeps them; the sum is float64). */
export function magnitudeWeights(x: Float32Array): Float32Array {
  const w = new Float32Array(x.length);
  if (x.length === 0) return w;
  let sumX2 = 0;
  for (let i = 0; i < x.length; i++) sumX2 += x[i]! * x[i]!;
  const av = Math.sqrt(sumX2 / x.length);
  for (let i = 0; i < x.length; i++) w[i] = av + Math.abs(x[i]!);
  return w;
}

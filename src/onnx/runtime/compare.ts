// How far the quantized model's outputs moved from the float model's, per output.

export interface OutputComparison {
  name: string;
  shape: number[];
  max_abs_error: number;
  mean_abs_error: number;
  /** 1 when both outputs are all zeros. */
  cosine_similarity: number;
  /** 10 log10(mean(ref²) / (mse + 1e-10)), as the tensor API reports; null for an all-zero reference. */
  snr_db: number | null;
  /**
   * Present (true) when the output is constant (every element equal, or all zero) on both
   * models: it then says nothing about the weights, whatever the figures.
   */
  constant?: true;
}

type Numeric = ArrayLike<number> | ArrayLike<bigint>;

function toNumber(v: number | bigint): number {
  return typeof v === 'bigint' ? Number(v) : v;
}

export function compareOutputs(name: string, shape: readonly number[], ref: Numeric, got: Numeric): OutputComparison {
  const n = ref.length;
  let maxAbs = 0;
  let sumAbs = 0;
  let sumSq = 0;
  let dot = 0;
  let refSq = 0;
  let gotSq = 0;
  const a0 = n > 0 ? toNumber(ref[0]!) : 0;
  const b0 = n > 0 ? toNumber(got[0]!) : 0;
  let varies = false;
  for (let i = 0; i < n; i++) {
    const a = toNumber(ref[i]!);
    const b = toNumber(got[i]!);
    if (a !== a0 || b !== b0) varies = true;
    const e = Math.abs(a - b);
    if (e > maxAbs || Number.isNaN(e)) maxAbs = e;
    sumAbs += e;
    sumSq += e * e;
    dot += a * b;
    refSq += a * a;
    gotSq += b * b;
  }
  const count = Math.max(n, 1);
  const cosine = refSq === 0 && gotSq === 0 ? 1 : refSq === 0 || gotSq === 0 ? 0 : dot / Math.sqrt(refSq * gotSq);
  const meanRef = refSq / count;
  const out: OutputComparison = {
    name,
    shape: [...shape],
    max_abs_error: maxAbs,
    mean_abs_error: sumAbs / count,
    cosine_similarity: cosine,
    snr_db: meanRef === 0 ? null : 10 * Math.log10(meanRef / (sumSq / count + 1e-10)),
  };
  if (!varies) out.constant = true;
  return out;
}

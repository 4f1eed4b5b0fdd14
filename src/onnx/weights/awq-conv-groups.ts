import { quadraticForms } from '../../core/kernels/linalg.js';
import type { Scheme } from '../../core/calibrate.js';
import type { ClipChoice } from './awq-clip.js';
import { scaledHessian } from './awq-clip.js';
import { searchClipConv } from './conv-columns.js';

// awq on a grouped Conv (weight [M, C/g, ...kernel], g conv groups, 1 < g < C). Output
// channels [j·M/g, (j+1)·M/g) read input channels [j·C/g, (j+1)·C/g) only, so the layer is g
// independent linear layers: s_c (c over all C input channels) multiplies the weight entries
// W[o, c − j·C/g, …] of group j = ⌊c / (C/g)⌋ only, the output error is a sum over the groups
// of each group's own ‖X_j ΔW_j‖² (its own patch XᵀX), and group j's rounding depends only on
// its own s (a quantization block never leaves an output channel's row). The scale search is
// therefore run per conv group, as llm-awq would run it per linear layer: each group gets its
// own α and its s normalized by its own √(max · min). The 1/s Mul before the Conv is over all
// C channels, as for group 1.
//
// Depthwise (C/g = 1) is left out on purpose (quantize-data-aware.ts awqProblem): each output
// channel reads one input channel, every quantization group lies inside one output channel,
// and Q(W·s)/s = Q(W) there: no s changes the rounding.

/** W [M, C/g, ...kernel] with the entries of input channel c (of its conv group) multiplied (or divided) by s[c], s over all C channels. */
export function scaleConvGroups(values: Float32Array, dims: readonly number[], group: number, s: Float32Array, divide = false): Float32Array {
  const m = dims[0]!;
  const cg = dims[1]!;
  const p = dims.slice(2).reduce((a, b) => a * b, 1);
  if (s.length !== cg * group || m % group !== 0) throw new Error(`scaleConvGroups: weight [${dims.join(', ')}] with ${group} groups does not match ${s.length} channel scales`);
  const rowsPer = m / group;
  const out = new Float32Array(values.length);
  for (let o = 0; o < m; o++) {
    const c0 = ((o / rowsPer) | 0) * cg;
    for (let c = 0; c < cg; c++) {
      const f = s[c0 + c]!;
      const base = (o * cg + c) * p;
      for (let i = 0; i < p; i++) out[base + i] = divide ? values[base + i]! / f : values[base + i]! * f;
    }
  }
  return out;
}

/** ‖X_j_patches · ΔW_j‖² per conv group j (convProxyLoss's terms). */
export function convGroupLosses(w: Float32Array, wHat: Float32Array, dims: readonly number[], group: number, patchK: number, xtx: Float64Array): Float64Array {
  const rowsPer = dims[0]! / group;
  const k = patchK;
  const out = new Float64Array(group);
  for (let g = 0; g < group; g++) {
    const d = new Float32Array(rowsPer * k);
    const base = g * rowsPer * k;
    for (let i = 0; i < d.length; i++) d[i] = w[base + i]! - wHat[base + i]!;
    out[g] = quadraticForms([d], rowsPer, k, xtx.subarray(g * k * k, (g + 1) * k * k))[0]!;
  }
  return out;
}

/**
 * The clip search (awq-clip.ts) on a scaled grouped Conv weight, one conv group at a time on
 * its own patch XᵀX of X/s (xtx holds group blocks of patchK², unscaled); the groups' rows
 * are consecutive output channels, so their choices concatenate into one over all M rows.
 */
export function searchClipConvGroups(scaled: Float32Array, dims: readonly number[], group: number, groupSize: number | undefined, xtx: Float64Array, s: Float32Array, bits: number, scheme: Scheme): ClipChoice {
  const m = dims[0]!;
  const cg = dims[1]!;
  const p = dims.slice(2).reduce((a, b) => a * b, 1);
  const k = cg * p;
  const rowsPer = m / group;
  const gDims = [rowsPer, ...dims.slice(1)];
  const parts: ClipChoice[] = [];
  for (let g = 0; g < group; g++) {
    const ps = new Float32Array(k);
    for (let c = 0; c < cg; c++) ps.fill(s[g * cg + c]!, c * p, (c + 1) * p);
    const h = scaledHessian(xtx.subarray(g * k * k, (g + 1) * k * k), ps);
    parts.push(searchClipConv(scaled.subarray(g * rowsPer * k, (g + 1) * rowsPer * k), gDims, groupSize, h, bits, scheme));
  }
  const first = parts[0]!;
  const maxVal = new Float32Array(m * first.groups);
  const step = new Uint8Array(m * first.groups);
  parts.forEach((c, g) => {
    maxVal.set(c.maxVal, g * rowsPer * first.groups);
    step.set(c.step, g * rowsPer * first.groups);
  });
  return { maxVal, step, rows: m, groups: first.groups, groupSize: first.groupSize };
}

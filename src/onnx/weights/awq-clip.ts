import { paramsFromRange } from '../../core/calibrate.js';
import { intParamsOf } from '../../core/quantize.js';
import { clamp, f32, rint } from '../../core/round.js';
import { axisLayout } from '../../core/shape.js';
import { GEMM_SET, LinalgSpace, pad4, pad8 } from '../../core/kernels/linalg.js';
import type { Scheme } from '../../core/calibrate.js';

// AWQ's clip search (llm-awq awq/quantize/auto_clip.py, auto_clip_layer), run after the scale
// search on the scaled weight W·s: per output channel and group, the group's max |w| is shrunk
// by 1 − i/20 for i = 0 … 9 (n_grid 20, max_shrink 0.5), the group is clamped to ±that and
// rounded to nearest on its min-max grid, and the ratio whose output error on the layer's
// calibration inputs is lowest wins (ties to the smaller shrink, as llm-awq's strict `<`).
//
// llm-awq measures the error as mean over 512 sub-sampled tokens of (x_g·(Q(clamp w_g) − w_g))²
// per group g; that is Δ_gᵀ (X_gᵀX_g) Δ_g / n, so here it is taken from the diagonal G×G blocks
// of the K×K XᵀX already gathered for the scale search (over every calibration row, no token
// kept: memory is one G×G block). The inputs the scaled weight sees are X/s, so the block is
// S⁻¹ H S⁻¹. Per channel the "group" is the whole row (G = K).

export const CLIP_GRID = 20;
export const CLIP_MAX_SHRINK = 0.5;

export interface ClipChoice {
  /** Per row (output channel) and group: the chosen max |w| (the group's own max when not shrunk). */
  maxVal: Float32Array;
  /** Per row and group: the chosen shrink step i (ratio 1 − i/20). */
  step: Uint8Array;
  rows: number;
  groups: number;
  groupSize: number;
}

/** One group rounded to nearest on the min-max grid of its values (rtn's calibration=minmax), into out. */
function roundGroup(x: Float32Array, from: number, to: number, bits: number, scheme: Scheme, out: Float64Array): void {
  const ip = intParamsOf(bits, scheme);
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = from; i < to; i++) {
    const v = x[i]!;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const alpha = Math.max(Math.abs(lo), Math.abs(hi));
  const { scale, zeroPoint } = paramsFromRange(scheme === 'symmetric' ? { lo: -alpha, hi: alpha } : { lo, hi }, ip);
  for (let i = from; i < to; i++) {
    const q = clamp(rint(f32(x[i]! / scale)) + zeroPoint, ip.qMin, ip.qMax);
    out[i - from] = f32((q - zeroPoint) * scale);
  }
}

/** Rows of Δ scored at once: the kernels' memory holds one G×G block and two ROW_CHUNK×G panels. */
const ROW_CHUNK = 256;

/**
 * The clip search on w (rows × k, row-major; the scaled weight) with h (k×k XᵀX of the inputs
 * that weight sees, or of the unscaled inputs X when s is given: then S⁻¹HS⁻¹). groupSize ≥ k means one group per row (per channel). Each candidate's
 * Δ_r H_bb Δ_rᵀ for a chunk of rows is one product on the WebAssembly kernels (float32
 * products, as the AWQ scale search's quadraticForms) and a dot per row in float64.
 */
export function searchClip(w: Float32Array, rows: number, k: number, groupSize: number, h: Float64Array, bits: number, scheme: Scheme, s?: Float32Array): ClipChoice {
  const g = Math.min(groupSize, k);
  const groups = Math.ceil(k / g);
  const maxVal = new Float32Array(rows * groups);
  const step = new Uint8Array(rows * groups);
  const steps = Math.floor(CLIP_MAX_SHRINK * CLIP_GRID);
  const chunk = Math.min(ROW_CHUNK, rows);
  const ld = pad8(g) + 8;
  const space = new LinalgSpace(4 * (ld * g + 2 * pad4(chunk) * ld) + 1024);
  const hm = space.matrix(g, ld);
  const dm = space.matrix(pad4(chunk), ld);
  const cm = space.matrix(pad4(chunk), ld);
  const clamped = new Float32Array(g);
  const wq = new Float64Array(g);
  const amax = new Float32Array(chunk);
  const best = new Float64Array(chunk);
  for (let b = 0; b < groups; b++) {
    const from = b * g;
    const n = Math.min(g, k - from);
    hm.data.fill(0);
    // With s, the block of S⁻¹HS⁻¹ (the inputs W·s sees are X/s), taken here instead of a K×K copy.
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) hm.data[i * ld + j] = s ? h[(from + i) * k + from + j]! / (s[from + i]! * s[from + j]!) : h[(from + i) * k + from + j]!;
    }
    for (let r0 = 0; r0 < rows; r0 += chunk) {
      const count = Math.min(chunk, rows - r0);
      dm.data.fill(0);
      for (let r = 0; r < count; r++) {
        const at = (r0 + r) * k + from;
        let m = 0;
        for (let i = 0; i < n; i++) m = Math.max(m, Math.abs(w[at + i]!));
        amax[r] = m;
        best[r] = Infinity;
      }
      for (let s = 0; s < steps; s++) {
        for (let r = 0; r < count; r++) {
          const at = (r0 + r) * k + from;
          const m = f32(amax[r]! * (1 - s / CLIP_GRID));
          for (let i = 0; i < n; i++) clamped[i] = Math.min(Math.max(w[at + i]!, -m), m);
          roundGroup(clamped, 0, n, bits, scheme, wq);
          for (let i = 0; i < n; i++) dm.data[r * ld + i] = wq[i]! - w[at + i]!;
        }
        space.gemm(cm, 0, dm, 0, ld, 1, hm, 0, count, n, n, GEMM_SET);
        for (let r = 0; r < count; r++) {
          let err = 0;
          for (let i = 0; i < n; i++) err += cm.data[r * ld + i]! * dm.data[r * ld + i]!;
          // Ties keep the smaller shrink, as llm-awq's strict `<`.
          if (err < best[r]!) {
            best[r] = err;
            const p = (r0 + r) * groups + b;
            step[p] = s;
            maxVal[p] = f32(amax[r]! * (1 - s / CLIP_GRID));
          }
        }
      }
    }
  }
  return { maxVal, step, rows, groups, groupSize: g };
}

/** H' = S⁻¹ H S⁻¹: the XᵀX of X/s (s per input feature). */
export function scaledHessian(h: Float64Array, s: Float32Array): Float64Array {
  const k = s.length;
  const out = new Float64Array(k * k);
  for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) out[i * k + j] = h[i * k + j]! / (s[i]! * s[j]!);
  return out;
}

/** values (the weight in its own layout, K along kAxis) with each row's groups clamped to ±maxVal. */
export function applyClip(values: Float32Array, dims: readonly number[], kAxis: number, clip: ClipChoice): Float32Array {
  const { outer, len: k, inner } = axisLayout(dims, kAxis);
  const out = new Float32Array(values.length);
  for (let o = 0; o < outer; o++) {
    for (let kk = 0; kk < k; kk++) {
      const b = (kk / clip.groupSize) | 0;
      const base = (o * k + kk) * inner;
      for (let i = 0; i < inner; i++) {
        const m = clip.maxVal[(o * inner + i) * clip.groups + b]!;
        const v = values[base + i]!;
        out[base + i] = v > m ? m : v < -m ? -m : v;
      }
    }
  }
  return out;
}

/** Mean shrink chosen (0 = none, 0.45 = the most) and the share of groups shrunk at all. */
export function clipSummary(clip: ClipChoice): { meanShrink: number; shrunk: number } {
  let sum = 0;
  let shrunk = 0;
  for (const s of clip.step) {
    sum += s / CLIP_GRID;
    if (s > 0) shrunk++;
  }
  const n = Math.max(1, clip.step.length);
  return { meanShrink: sum / n, shrunk: shrunk / n };
}

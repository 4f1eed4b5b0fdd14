import type { IntParams } from '../calibrate.js';
import { CHUNK, kernelsFor, LAYOUT, stage } from './runtime.js';

// lsq.wat on the kernels' memory: groups of equal length, four at a time (one a lane), read
// where they are when the values live in an arena, else staged CHUNK elements at a time.
// The per-group inputs and outputs go in the parameter areas, two arrays of SLOTS to an area;
// the unit's scratch takes the last two areas.

const SLOTS = CHUNK / 2;
const AREA = LAYOUT.q - LAYOUT.x;
const [OFFS, LO] = [LAYOUT.q, LAYOUT.q + 4 * SLOTS];
const [HI, RS] = [LAYOUT.p[0], LAYOUT.p[0] + 4 * SLOTS];
const [RZ, OS] = [LAYOUT.p[1], LAYOUT.p[1] + 4 * SLOTS];
const [OZ, TAB] = [LAYOUT.p[2], LAYOUT.p[2] + 4 * SLOTS];
const SCRATCH = LAYOUT.p[3];

/** The longest group the kernel takes: its scratch (768 bytes + 80 per value) fits two areas. */
export const LSQ_KERNEL_MAX_GROUP = Math.floor((2 * AREA - 768) / 80);

/** What lsq.wat needs besides the values: per group (by index) its range and round-to-nearest parameters. */
export interface LsqGroups {
  /** Group p is values[offsets[p], offsets[p] + n). */
  offsets: Float64Array;
  lo: Float32Array;
  hi: Float32Array;
  rtnScale: Float32Array;
  rtnZeroPoint: Int32Array;
}

/**
 * lsq's scale and zero point for the groups `ids` (ascending, each of length n ≤
 * LSQ_KERNEL_MAX_GROUP, unweighted, finite), written to scale[id] / zeroPoint[id]. `table`
 * holds the candidates' numerators (lsq.wat). Equal to lsqGroup bit for bit.
 */
export function lsqKernel(values: Float32Array, g: LsqGroups, ids: Int32Array, n: number, p: IntParams, table: Float64Array, scale: Float32Array, zeroPoint: Int32Array): void {
  if (!(n >= 1 && n <= LSQ_KERNEL_MAX_GROUP)) throw new RangeError(`lsq kernel: group length ${n} is outside 1..${LSQ_KERNEL_MAX_GROUP}`);
  const k = kernelsFor(values);
  const resident = values.buffer === k.buffer;
  const { f32, i32, f64 } = k;
  f64.set(table, TAB >> 3);
  // Whole groups per staged batch when the values must be copied in.
  const span = resident ? Infinity : Math.max(n, CHUNK - (CHUNK % n));
  for (let a = 0; a < ids.length; ) {
    const first = g.offsets[ids[a]!]!;
    let b = a;
    while (b < ids.length && b - a < SLOTS - 3 && g.offsets[ids[b]!]! + n - first <= span) b++;
    const base = resident ? values.byteOffset : stage(k, values, first, g.offsets[ids[b - 1]!]! + n - first, LAYOUT.x);
    const origin = resident ? 0 : first;
    const slots = (b - a + 3) & ~3;
    for (let s = 0; s < slots; s++) {
      // Padding lanes repeat the last group (their results are written and ignored).
      const id = ids[Math.min(a + s, b - 1)]!;
      i32[(OFFS >> 2) + s] = g.offsets[id]! - origin;
      f32[(LO >> 2) + s] = g.lo[id]!;
      f32[(HI >> 2) + s] = g.hi[id]!;
      f32[(RS >> 2) + s] = g.rtnScale[id]!;
      i32[(RZ >> 2) + s] = g.rtnZeroPoint[id]!;
    }
    k.lsq.lsq(slots >> 2, n, base, OFFS, LO, HI, RS, RZ, OS, OZ, TAB, table.length, p.scheme === 'symmetric' ? 1 : 0, p.qMin, p.qMax, SCRATCH);
    for (let s = 0; s < b - a; s++) {
      const id = ids[a + s]!;
      scale[id] = f32[(OS >> 2) + s]!;
      zeroPoint[id] = i32[(OZ >> 2) + s]!;
    }
    a = b;
  }
}

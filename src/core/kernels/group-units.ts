import { CHUNK, kernelsFor, LAYOUT, stage, type Kernels } from './runtime.js';

// What lsq.wat and hqq.wat share: groups of equal length handed over four at a time (a
// unit, one group a lane), read where they are when the values live in an arena, else staged
// CHUNK elements at a time. The per-group inputs and outputs go in the parameter areas, two
// arrays of SLOTS to an area; a unit's scratch takes the last two areas.

export const SLOTS = CHUNK / 2;
const AREA = LAYOUT.q - LAYOUT.x;
export const SLOT = {
  offs: LAYOUT.q,
  lo: LAYOUT.q + 4 * SLOTS,
  hi: LAYOUT.p[0],
  rs: LAYOUT.p[0] + 4 * SLOTS,
  rz: LAYOUT.p[1],
  os: LAYOUT.p[1] + 4 * SLOTS,
  oz: LAYOUT.p[2],
  /** A table of float64 constants. */
  tab: LAYOUT.p[2] + 4 * SLOTS,
} as const;
/** The scratch of one unit and its bytes. */
export const SCRATCH = LAYOUT.p[3];
export const SCRATCH_BYTES = 2 * AREA;

/** Per group (by index): where its values start, its min-max range and its round-to-nearest parameters. */
export interface GroupInputs {
  /** Group p is values[offsets[p], offsets[p] + n). */
  offsets: Float64Array;
  lo: Float32Array;
  hi: Float32Array;
  rtnScale: Float32Array;
  rtnZeroPoint: Int32Array;
}

/**
 * Runs `call(k, units, base)` on the groups `ids` (ascending, each of length n ≤ CHUNK) in
 * batches: the slots hold each batch's groups (offsets relative to `base`, the kernels'
 * address of the values), padded to whole units by repeating the last group; the results
 * the call leaves in SLOT.os / SLOT.oz go to scale[id] / zeroPoint[id].
 */
export function runUnits(values: Float32Array, g: GroupInputs, ids: Int32Array, n: number, scale: Float32Array, zeroPoint: Int32Array,
  call: (k: Kernels, units: number, base: number) => void): void {
  const k = kernelsFor(values);
  const resident = values.buffer === k.buffer;
  const { f32, i32 } = k;
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
      i32[(SLOT.offs >> 2) + s] = g.offsets[id]! - origin;
      f32[(SLOT.lo >> 2) + s] = g.lo[id]!;
      f32[(SLOT.hi >> 2) + s] = g.hi[id]!;
      f32[(SLOT.rs >> 2) + s] = g.rtnScale[id]!;
      i32[(SLOT.rz >> 2) + s] = g.rtnZeroPoint[id]!;
    }
    call(k, slots >> 2, base);
    for (let s = 0; s < b - a; s++) {
      const id = ids[a + s]!;
      scale[id] = f32[(SLOT.os >> 2) + s]!;
      zeroPoint[id] = i32[(SLOT.oz >> 2) + s]!;
    }
    a = b;
  }
}

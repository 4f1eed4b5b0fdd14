import type { ParamPlan } from '../quantize.js';

// How a tensor's elements map onto the two kernel shapes, and how they are cut into calls of
// at most `cap` elements (each call's elements are contiguous, so one typed-array copy
// stages them).
//
// "runs": consecutive elements share one scale. Row r holds `runs` runs of `runLen`
//   elements, the last one `lastLen`; run j of row r uses parameter r * prow + j.
//   per tensor: one run; per channel with inner >= 4: rows = outer, runs = channels, prow 0;
//   per group along the last axis: rows = outer, runs = blocks, prow = blocks.
// "rows": each element has its own scale, taken from a vector that a block of rows shares.
//   per group along another axis: a block is one group of rows (o, j), its vector the
//   parameters (o, j, :); per channel along the last axis (or with inner < 4): one block of
//   `outer` rows whose vector is the channel scales, each repeated `repeat` (= inner) times.

export interface RunsShape {
  form: 'runs';
  rows: number;
  runs: number;
  runLen: number;
  lastLen: number;
  prow: number;
}

export interface RowsShape {
  form: 'rows';
  rowLen: number;
  /** Blocks of rows in memory order; block b's vector starts at parameter b * rowLen (see rowsParam). */
  blocks: number;
  /** Rows per block, the last block of every `blocksPerOuter` having `lastBlockRows`. */
  blockRows: number;
  lastBlockRows: number;
  blocksPerOuter: number;
  /** Each parameter covers `repeat` consecutive elements of a row. */
  repeat: number;
}

export type KernelShape = RunsShape | RowsShape;

/** Runs shorter than this go through the row form (scalar tails would dominate them). */
const MIN_RUN = 4;

export function kernelShape(plan: ParamPlan): KernelShape {
  const { outer, len, inner, group } = plan;
  if (plan.count === 1) {
    const n = outer * len * inner;
    return { form: 'runs', rows: 1, runs: 1, runLen: n, lastLen: n, prow: 0 };
  }
  if (plan.innerStride === 0) {
    // per channel
    if (inner >= MIN_RUN) return { form: 'runs', rows: outer, runs: len, runLen: inner, lastLen: inner, prow: 0 };
    return { form: 'rows', rowLen: len * inner, blocks: 1, blockRows: outer, lastBlockRows: outer, blocksPerOuter: 1, repeat: inner };
  }
  const blocks = Math.ceil(len / group);
  const last = len - (blocks - 1) * group;
  if (inner === 1) return { form: 'runs', rows: outer, runs: blocks, runLen: group, lastLen: last, prow: blocks };
  return { form: 'rows', rowLen: inner, blocks: outer * blocks, blockRows: group, lastBlockRows: last, blocksPerOuter: blocks, repeat: 1 };
}

/** One kernel call over runs: `count` elements from `start`, parameters from `p0`. */
export interface RunsCall {
  start: number;
  count: number;
  rows: number;
  runs: number;
  runLen: number;
  lastLen: number;
  p0: number;
  /** Parameters this call reads: p0 .. p0 + params - 1. */
  params: number;
  prow: number;
}

export function forEachRunsCall(s: RunsShape, cap: number, visit: (c: RunsCall) => void): void {
  const rowLen = (s.runs - 1) * s.runLen + s.lastLen;
  if (rowLen <= cap) {
    const k = Math.max(1, Math.floor(cap / rowLen));
    for (let r0 = 0; r0 < s.rows; r0 += k) {
      const rows = Math.min(k, s.rows - r0);
      const params = (rows - 1) * s.prow + s.runs;
      visit({ start: r0 * rowLen, count: rows * rowLen, rows, runs: s.runs, runLen: s.runLen, lastLen: s.lastLen, p0: r0 * s.prow, params, prow: s.prow });
    }
    return;
  }
  for (let r = 0; r < s.rows; r++) {
    if (s.runLen <= cap) {
      const m = Math.floor(cap / s.runLen);
      for (let j0 = 0; j0 < s.runs; j0 += m) {
        const runs = Math.min(m, s.runs - j0);
        const last = j0 + runs === s.runs ? s.lastLen : s.runLen;
        const count = (runs - 1) * s.runLen + last;
        visit({ start: r * rowLen + j0 * s.runLen, count, rows: 1, runs, runLen: s.runLen, lastLen: last, p0: r * s.prow + j0, params: runs, prow: 0 });
      }
      continue;
    }
    for (let j = 0; j < s.runs; j++) {
      const len = j === s.runs - 1 ? s.lastLen : s.runLen;
      for (let off = 0; off < len; off += cap) {
        const piece = Math.min(cap, len - off);
        visit({ start: r * rowLen + j * s.runLen + off, count: piece, rows: 1, runs: 1, runLen: piece, lastLen: piece, p0: r * s.prow + j, params: 1, prow: 0 });
      }
    }
  }
}

/** A block's columns [c0, c1): its parameter vector slice, then the calls over its rows. */
export interface RowsPiece {
  block: number;
  c0: number;
  c1: number;
  /** Element index of the block's first row. */
  blockStart: number;
  rows: number;
}

/** One kernel call over rows: `rows` rows of `len` elements from `start`, all contiguous. */
export interface RowsCall {
  start: number;
  rows: number;
  len: number;
}

/**
 * Visits each block's column pieces (a row longer than `cap` is cut into pieces). `piece`
 * gets each piece and a function that makes its calls, so it can set up the parameter vector
 * before them and read results after.
 */
export function forEachRowsPiece(s: RowsShape, cap: number, piece: (p: RowsPiece, calls: (call: (c: RowsCall) => void) => void) => void): void {
  let blockStart = 0;
  for (let b = 0; b < s.blocks; b++) {
    const rows = b % s.blocksPerOuter === s.blocksPerOuter - 1 ? s.lastBlockRows : s.blockRows;
    const start = blockStart;
    for (let c0 = 0; c0 < s.rowLen; c0 += cap) {
      const c1 = Math.min(s.rowLen, c0 + cap);
      piece({ block: b, c0, c1, blockStart: start, rows }, (call) => {
        if (c1 - c0 === s.rowLen) {
          const k = Math.max(1, Math.floor(cap / s.rowLen));
          for (let r0 = 0; r0 < rows; r0 += k) call({ start: start + r0 * s.rowLen, rows: Math.min(k, rows - r0), len: s.rowLen });
        } else {
          for (let r = 0; r < rows; r++) call({ start: start + r * s.rowLen + c0, rows: 1, len: c1 - c0 });
        }
      });
    }
    blockStart += rows * s.rowLen;
  }
}

/** Parameter index of column c of block b's vector. */
export function rowsParam(s: RowsShape, b: number, c: number): number {
  return b * s.rowLen + Math.floor(c / s.repeat);
}

/**
 * Copies the parameters of columns [c0, c1) of block b into dst (an element per column,
 * repeated where one parameter covers several columns).
 */
export function copyRowsParams<T extends Float32Array | Int32Array>(s: RowsShape, b: number, c0: number, c1: number, src: T, dst: T): void {
  if (s.repeat === 1) {
    const p = rowsParam(s, b, c0);
    dst.set(src.subarray(p, p + c1 - c0));
    return;
  }
  for (let c = c0; c < c1; c++) dst[c - c0] = src[rowsParam(s, b, c)]!;
}

// lsq.wat and hqq.wat against the TypeScript references (methods/lsq.ts lsqGroup, hqq.ts
// hqqGroup): the same scale and zero point, bit for bit, on every group of many shapes, data
// kinds, bit widths and both schemes. quantize()'s calibrate sends min-max groups to the kernels.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Range, Scheme } from '../../../src/core/calibrate.js';
import { tensorFloats } from '../../../src/core/kernels/arenas.js';
import { HQQ_KERNEL_MAX_GROUP } from '../../../src/core/kernels/hqq.js';
import { LSQ_KERNEL_MAX_GROUP } from '../../../src/core/kernels/lsq.js';
import { arenaOf } from '../../../src/core/kernels/runtime.js';
import { hqqGroup } from '../../../src/core/methods/hqq.js';
import { lsqGroup } from '../../../src/core/methods/lsq.js';
import { calibrate, intParamsOf, type QuantSpec } from '../../../src/core/quantize.js';
import { randn } from '../../onnx/models.js';

/** Kinds of groups that take different branches of the search. */
const KINDS: Record<string, (n: number, seed: number) => Float32Array> = {
  gauss: (n, seed) => randn(n, seed),
  heavy: (n, seed) => randn(n, seed).map((v, i) => (i % 7 === 0 ? v * 12 : v)),
  positive: (n, seed) => randn(n, seed).map((v) => Math.abs(v) + 0.5),
  negative: (n, seed) => randn(n, seed).map((v) => -Math.abs(v) - 0.5),
  tiny: (n, seed) => randn(n, seed, 1e-30),
  huge: (n, seed) => randn(n, seed, 1e30),
  // Ties and repeated values: a few levels only, and some groups all one value or all zero.
  levels: (n, seed) => randn(n, seed).map((v) => Math.round(v * 2) / 2),
  constant: (n) => new Float32Array(n).fill(0.75),
  zeros: (n) => new Float32Array(n),
  mixed: (n, seed) => randn(n, seed).map((v, i) => (Math.floor(i / 8) % 3 === 0 ? 0 : v)),
};

type Method = 'lsq' | 'hqq';
const METHODS = ['lsq', 'hqq'] as const;
const MAX_GROUP = { lsq: LSQ_KERNEL_MAX_GROUP, hqq: HQQ_KERNEL_MAX_GROUP };

const spec = (method: Method, bits: number, scheme: Scheme, groupSize: number): QuantSpec => ({
  bits, scheme, granularity: 'per_group', axis: -1, groupSize, calibration: 'minmax', percentile: 99.99, method,
});

/** The reference on group g of a [rows, cols] tensor grouped along the rows. */
function reference(method: Method, x: Float32Array, cols: number, groupSize: number, g: number, bits: number, scheme: Scheme) {
  const blocks = Math.ceil(cols / groupSize);
  const r = Math.floor(g / blocks);
  const b = g % blocks;
  const from = r * cols + b * groupSize;
  const slice = x.subarray(from, Math.min(from + groupSize, r * cols + cols));
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of slice) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const alpha = Math.max(Math.abs(lo), Math.abs(hi));
  const range: Range = scheme === 'asymmetric' ? { lo, hi } : { lo: -alpha, hi: alpha };
  return (method === 'lsq' ? lsqGroup : hqqGroup)(slice, range, intParamsOf(bits, scheme));
}

function check(method: Method, x: Float32Array, rows: number, cols: number, groupSize: number, bits: number, scheme: Scheme, what: string) {
  const params = calibrate(x, [rows, cols], spec(method, bits, scheme, groupSize));
  for (let g = 0; g < params.scale.length; g++) {
    const ref = reference(method, x, cols, groupSize, g, bits, scheme);
    if (params.scale[g] !== Math.fround(ref.scale) || params.zeroPoint[g] !== ref.zeroPoint) {
      assert.fail(`${method} ${what} group ${g}: kernel ${params.scale[g]} / ${params.zeroPoint[g]}, reference ${ref.scale} / ${ref.zeroPoint}`);
    }
  }
}

for (const method of METHODS) {
test(`the ${method} kernel gives the reference scale and zero point on every group: kinds × group sizes × bits × schemes`, () => {
  let seed = 1;
  for (const [kind, make] of Object.entries(KINDS)) {
    for (const groupSize of [1, 3, 8, 32, 128]) {
      // 9 groups a row: two whole units and a padded one.
      const rows = 3;
      const cols = groupSize * 3;
      const x = make(rows * cols, seed++);
      for (const bits of [2, 3, 4, 8]) {
        for (const scheme of ['asymmetric', 'symmetric'] as const) check(method, x, rows, cols, groupSize, bits, scheme, `${kind} g${groupSize} ${bits}-bit ${scheme}`);
      }
    }
  }
});

test(`the ${method} kernel on many Gaussian groups (staged in several batches) and with a shorter last block (those take the reference)`, () => {
  const x = randn(40 * 4096, 77);
  for (const scheme of ['asymmetric', 'symmetric'] as const) {
    check(method, x, 40, 4096, 32, 4, scheme, `g32 ${scheme}`);
    check(method, x, 40, 4096, 100, 3, scheme, `g100 (last block 96) ${scheme}`);
  }
});

test(`the ${method} kernel reads a tensor in an arena where it is, with the same results`, () => {
  const rows = 64;
  const cols = 4096;
  const x = tensorFloats(rows * cols);
  x.set(randn(rows * cols, 5));
  assert.ok(arenaOf(x), 'an arena');
  for (const scheme of ['asymmetric', 'symmetric'] as const) check(method, x, rows, cols, 128, 4, scheme, `arena g128 ${scheme}`);
});

test(`${method}: groups up to the kernel's limit, and longer ones by the reference`, () => {
  for (const len of [MAX_GROUP[method], MAX_GROUP[method] + 1]) {
    const x = randn(5 * len, len);
    for (const scheme of ['asymmetric', 'symmetric'] as const) check(method, x, 5, len, len, 4, scheme, `channel of ${len} ${scheme}`);
  }
});
}

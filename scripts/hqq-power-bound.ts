import { HQQ_POWER_MAX_REL_ERROR, powApprox, powerConstants } from '../src/core/methods/hqq-power.js';

// Checks methods/hqq-power.ts's stated bound exhaustively: every float32 a from the lowest
// threshold of HQQ's shrink (below 0.14, rounded down to a binade) up to FLT_MAX, against
// the exact a ** (p − 1) (float64). About 1.1e9 values, a few minutes:
//
//     node dist/scripts/hqq-power-bound.js [from] [to]     # optional float32 range
//
// Prints the largest relative error overall and per range of a, and exits 1 above the bound.

const y = 0.7 - 1;
const c = powerConstants(y);
const f = new Float32Array(1);
const u = new Uint32Array(f.buffer);
const bitsOf = (v: number) => {
  f[0] = v;
  return u[0]!;
};
const from = bitsOf(Number(process.argv[2] ?? 0.125));
const to = bitsOf(Number(process.argv[3] ?? 3.4028234663852886e38));
let worst = 0;
let worstAt = 0;
let decadeWorst = 0;
let decade = Math.floor(Math.log10(f[0] = Number(process.argv[2] ?? 0.125)));
const t0 = Date.now();
for (let b = from; b <= to; b++) {
  u[0] = b;
  const a = f[0]!;
  const exact = a ** y;
  const r = Math.abs(powApprox(a, c) - exact) / exact;
  if (r > decadeWorst) decadeWorst = r;
  if (r > worst) {
    worst = r;
    worstAt = a;
  }
  if ((b & 0xffffff) === 0xffffff || b === to) {
    const d = Math.floor(Math.log10(a));
    if (d !== decade || b === to) {
      console.log(`a in [1e${decade}, 1e${decade + 1}): max relative error ${decadeWorst.toExponential(3)}`);
      decade = d;
      decadeWorst = 0;
    }
  }
}
console.log(`${to - from + 1} float32 values in [${(u[0] = from, f[0])}, ${(u[0] = to, f[0])}], ${((Date.now() - t0) / 1000).toFixed(0)} s`);
console.log(`max relative error ${worst.toExponential(4)} at a = ${worstAt} (stated bound ${HQQ_POWER_MAX_REL_ERROR})`);
if (!(worst <= HQQ_POWER_MAX_REL_ERROR)) process.exit(1);

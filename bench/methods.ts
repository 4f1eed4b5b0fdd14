import { performance } from 'node:perf_hooks';
import { getKernels } from '../src/core/kernels/runtime.js';
import { reportFromSums } from '../src/core/metrics.js';
import { hqqGroup } from '../src/core/methods/hqq.js';
import { lsqGroup } from '../src/core/methods/lsq.js';
import { intParamsOf, quantize, type QuantSpec } from '../src/core/quantize.js';
import { minmaxRange, type Scheme } from '../src/core/calibrate.js';
import { row, type BenchOptions, type Detail, type Row, type ScenarioResult } from './lib/rows.js';
import { median } from './lib/stats.js';
import { gaussian } from './lib/tensors.js';

// The data-free methods against rtn on the same weight: each job is quantize() (calibrate,
// fit the parameters, quantize, error report), one thread, 4-bit in groups of 32 and 128 along
// the rows of a [rows, 4096] weight, both schemes. lsq and hqq run in lsq.wat / hqq.wat (the
// same parameters as the TypeScript references, bit for bit; both compute in float32, four
// groups a vector). Target: ≤ 3× rtn per tensor. hqq's bound is its passes per element × the
// CPU time of one pass per element (details).

/** Wall and CPU time (ms) of fn: medians of `runs` after one warm-up. */
function timeBoth(fn: () => unknown, runs: number): { wall: number; cpu: number } {
  fn();
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < runs; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    fn();
    wall.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  return { wall: median(wall), cpu: median(cpu) };
}

/** The TypeScript references group by group (what quantize() ran before the kernels), for the speed-up. */
function referenceJob(x: Float32Array, group: number, scheme: Scheme, method: 'lsq' | 'hqq'): void {
  const p = intParamsOf(4, scheme);
  for (let from = 0; from < x.length; from += group) {
    const slice = x.subarray(from, from + group);
    const range = minmaxRange(slice, scheme);
    if (method === 'lsq') lsqGroup(slice, range, p);
    else hqqGroup(slice, range, p);
  }
}

export async function run(o: BenchOptions): Promise<ScenarioResult> {
  const rows = o.quick ? 64 : 1024;
  const cols = 4096;
  const x = gaussian(rows * cols, 21);
  const runs = Math.min(o.runs, 3);
  const out: Row[] = [];
  const details: Detail[] = [];
  for (const scheme of ['asymmetric', 'symmetric'] as const) {
    for (const group of [32, 128]) {
      const spec: QuantSpec = { bits: 4, scheme, granularity: 'per_group', axis: -1, groupSize: group, calibration: 'minmax', percentile: 99.99 };
      const job = (method: 'rtn' | 'lsq' | 'hqq') => quantize(x, [rows, cols], { ...spec, method });
      const rtn = timeBoth(() => job('rtn'), Math.max(runs, 5));
      const snrRtn = reportFromSums(job('rtn').sums).snr_db!;
      for (const method of ['lsq', 'hqq'] as const) {
        const t = timeBoth(() => job(method), runs);
        // The counters the kernels keep: passes over each group's values (and hqq's powers).
        const k = getKernels();
        const before = [k.lsq.scans.value, k.lsq.scorings.value, k.hqq.passes.value, k.hqq.powers.value];
        const snr = reportFromSums(job(method).sums).snr_db!;
        const [scans, scorings, passes, powers] = [k.lsq.scans.value, k.lsq.scorings.value, k.hqq.passes.value, k.hqq.powers.value].map((v, i) => (v - before[i]!) | 0);
        const perElement = (unitPasses: number) => (unitPasses * 4 * group) / x.length;
        if (method === 'lsq') {
          details.push({ name: `lsq ${scheme} g${group}: candidate passes per element (two candidates each; a unit's lanes run together)`, value: perElement(scans!), unit: 'passes' });
          details.push({ name: `lsq ${scheme} g${group}: float32 scoring passes per element (besides the row copy, which scores rtn)`, value: perElement(scorings!), unit: 'passes' });
        } else {
          // Passes of 4-lane vectors (a lane takes the next group when its own stops), the
          // shrink's power taken on whole vectors, and what one pass costs per element.
          details.push({ name: `hqq ${scheme} g${group}: iteration passes per element`, value: perElement(passes!), unit: 'passes' });
          details.push({ name: `hqq ${scheme} g${group}: power evaluations per element (whole 4-lane vectors)`, value: (powers! * 4) / x.length, unit: 'powers' });
          details.push({ name: `hqq ${scheme} g${group}: CPU time per element per pass`, value: (t.cpu * 1e6) / (perElement(passes!) * x.length), unit: 'ns' });
          details.push({ name: `rtn ${scheme} g${group}: CPU time per element (the whole job)`, value: (rtn.cpu * 1e6) / x.length, unit: 'ns' });
        }
        const suffix = `${scheme === 'symmetric' ? '_sym' : ''}${group === 128 ? '_g128' : ''}`;
        out.push(row({
          name: `method.${method}${suffix}`, value: t.wall, unit: 'ms', baselineName: 'rtn job', baselineValue: rtn.wall, better: 'lower', target: 3,
          note: `[${rows}, ${cols}] 4-bit ${scheme} g${group}; ratio = ${method} job / rtn job (wall, same run; by CPU time ${(t.cpu / rtn.cpu).toFixed(1)}); SNR ${snr.toFixed(2)} dB vs rtn ${snrRtn.toFixed(2)} dB`,
        }));
        details.push({ name: `${method} ${scheme} g${group}: CPU time / rtn CPU time`, value: t.cpu / rtn.cpu, unit: '×' });
      }
    }
  }
  // What the kernels replaced, on a quarter of the weight (the references are slow).
  const part = x.subarray(0, x.length >> 2);
  for (const method of ['lsq', 'hqq'] as const) {
    const ref = timeBoth(() => referenceJob(part, 32, 'asymmetric', method), 1).cpu * 4;
    const kernel = timeBoth(() => quantize(part, [rows >> 2, cols], { bits: 4, scheme: 'asymmetric', granularity: 'per_group', axis: -1, groupSize: 32, calibration: 'minmax', percentile: 99.99, method }), runs).cpu * 4;
    details.push({ name: `${method} asymmetric g32: TypeScript reference CPU time / kernel job CPU time (speed-up)`, value: ref / kernel, unit: '×' });
  }
  return { rows: out, details };
}

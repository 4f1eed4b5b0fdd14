import { writeFileSync } from 'node:fs';
import { machine } from './lib/machine.js';
import type { BenchOptions, Detail, Row, ScenarioResult } from './lib/rows.js';
import { run as kernels } from './kernels.js';
import { run as calibration } from './calibration.js';
import { run as http } from './http.js';
import { run as poolScaling } from './pool-scaling.js';
import { run as memory } from './memory.js';
import { run as modelMemory } from './model-memory.js';
import { run as onnxModel } from './onnx-model.js';
import { run as modelPath } from './model-path.js';
import { run as latencyTable } from './latency-table.js';
import { run as modelIo } from './model-io.js';
import { run as modelCalibration } from './model-calibration.js';
import { run as staticQuant } from './static.js';
import { run as methods } from './methods.js';
import { run as methodsHttp } from './methods-http.js';
import { run as lowbit } from './lowbit.js';
import { run as lowbitGrouped } from './lowbit-grouped.js';
import { run as gptq } from './gptq.js';
import { run as weights } from './weights.js';
import { run as scale } from './scale.js';
import { run as fp16Big } from './model-big-fp16.js';
import { run as jobBig } from './model-job-big.js';

// npm run bench [-- --quick] [-- --only=kernels,http]: every scenario, a table of medians and
// ratios against baselines measured in the same run, and bench/results.json.
const SCENARIOS: Record<string, (o: BenchOptions) => Promise<ScenarioResult>> = {
  kernels,
  calibration,
  http,
  'pool-scaling': poolScaling,
  memory,
  'onnx-model': onnxModel,
  'model-memory': modelMemory,
  'model-path': modelPath,
  'latency-table': latencyTable,
  'model-io': modelIo,
  'model-calibration': modelCalibration,
  static: staticQuant,
  methods,
  'methods-http': methodsHttp,
  lowbit,
  'lowbit-grouped': lowbitGrouped,
  gptq,
  weights,
  scale,
};

// `--big` runs the scenarios that need many GiB of disk and minutes (not in `npm run bench`).
const BIG: Record<string, (o: BenchOptions) => Promise<ScenarioResult>> = {
  'job-2gb': jobBig,
  'fp16-big': (o) => fp16Big({ ...o, sizes: sizes ?? undefined }),
};

const quick = process.argv.includes('--quick');
const big = process.argv.includes('--big');
const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7).split(',');
const sizes = process.argv.find((a) => a.startsWith('--sizes='))?.slice(8).split(',').map(Number);
const options: BenchOptions = { quick, runs: quick ? 5 : 9, log: (line) => console.log(line) };
const m = machine();
console.log(`machine: ${m.cpu} × ${m.cores} cores, ${m.memory_gib} GiB, Node ${m.node}, onnxruntime-node ${m.onnxruntime_node}, ${m.platform}`);
console.log(`mode: ${quick ? 'quick (smaller tensors)' : 'full'}, median of ${options.runs} runs after warm-up\n`);

const rows: Row[] = [];
const details: Array<Detail & { scenario: string }> = [];
for (const [name, scenario] of Object.entries(big ? BIG : SCENARIOS)) {
  if (only && !only.includes(name)) continue;
  const t0 = Date.now();
  const result = await scenario(options);
  rows.push(...result.rows);
  details.push(...result.details.map((d) => ({ scenario: name, ...d })));
  console.log(`${name}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

const fmt = (v: number | null, digits = 1) => (v === null ? '—' : Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(digits));
console.log('');
console.log(['row'.padEnd(30), 'value'.padStart(12), 'baseline'.padStart(12), 'ratio'.padStart(7), 'target'.padStart(7), ' meets', '  baseline is'].join(' '));
for (const r of rows) {
  const meets = r.meets_target === null ? '  —' : r.meets_target ? '  yes' : '  NO';
  console.log(
    [r.name.padEnd(30), `${fmt(r.value)} ${r.unit}`.padStart(12), fmt(r.baseline_value).padStart(12), fmt(r.ratio, 2).padStart(7), fmt(r.target_ratio, 2).padStart(7), meets.padEnd(6), `  ${r.baseline_name ?? ''}`].join(' '),
  );
  if (r.note) console.log(`${''.padEnd(32)}${r.note}`);
}
console.log('');
for (const d of details) console.log(`${d.scenario}: ${d.name}: ${fmt(d.value)} ${d.unit}`);

const out = new URL('../../bench/results.json', import.meta.url);
writeFileSync(out, `${JSON.stringify({ machine: m, mode: quick ? 'quick' : 'full', date: new Date().toISOString(), rows, details }, null, 2)}\n`);
console.log(`\nwrote ${out.pathname}`);

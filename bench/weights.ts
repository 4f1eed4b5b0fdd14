import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { encodeSafetensorsHeader, type SafetensorsSpec } from '../src/codecs/safetensors.js';
import { floatToHalf } from '../src/core/float16.js';
import { median } from './lib/stats.js';
import { row, type BenchOptions, type Detail, type ScenarioResult } from './lib/rows.js';
import { gaussian, MiB } from './lib/tensors.js';

// `quantd weights` on a sharded F16 checkpoint (4 shards of 4096x2048 Linear weights and a
// norm vector each), in a fresh process: peak RSS (all threads, maxRSS at exit) against the
// checkpoint's size, and throughput. The checkpoint is written under the OS temp directory and
// removed afterwards.

const MAIN = new URL('../src/cli/main.js', import.meta.url).pathname;
const MAXRSS = new URL('./lib/report-max-rss.js', import.meta.url).pathname;

function runCli(args: string[]): Promise<{ ms: number; maxRssKib: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, ['--import', MAXRSS, MAIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('exit', (code) => {
      const ms = performance.now() - t0;
      const m = /quantd-bench-maxrss-kib (\d+)/.exec(stderr);
      if (code !== 0 || !m) reject(new Error(`quantd ${args.join(' ')} exited ${code}: ${stderr}`));
      else resolve({ ms, maxRssKib: Number(m[1]) });
    });
  });
}

export async function run(o: BenchOptions): Promise<ScenarioResult> {
  const perShard = o.quick ? 2 : 6;
  const rows = 4096;
  const cols = 2048;
  const shards = 4;
  const dir = mkdtempSync(join(tmpdir(), 'quantd-bench-weights-'));
  try {
    const x = gaussian(rows * cols, 7);
    const half = new Uint16Array(x.length);
    for (let i = 0; i < x.length; i++) half[i] = floatToHalf(x[i]! * 0.02);
    const weight = new Uint8Array(half.buffer);
    const norm = new Uint8Array(cols * 2);
    const map: Record<string, string> = {};
    let total = 0;
    for (let s = 0; s < shards; s++) {
      const name = `model-0000${s + 1}-of-0000${shards}.safetensors`;
      const specs: SafetensorsSpec[] = [];
      for (let k = 0; k < perShard; k++) specs.push({ name: `model.layers.${s}.mlp.proj${k}.weight`, dtype: 'F16', shape: [rows, cols] });
      specs.push({ name: `model.layers.${s}.norm.weight`, dtype: 'F16', shape: [cols] });
      const { head } = encodeSafetensorsHeader(specs, { format: 'pt' });
      const parts = [head, ...specs.slice(0, perShard).map(() => weight), norm];
      writeFileSync(join(dir, name), Buffer.concat(parts));
      total += parts.reduce((n, p) => n + p.length, 0);
      for (const spec of specs) map[spec.name] = name;
    }
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: map }));
    const idle = await runCli(['--version']);
    const runs: { ms: number; maxRssKib: number }[] = [];
    const n = o.quick ? 1 : 3;
    for (let i = 0; i < n; i++) {
      rmSync(join(dir, 'out'), { recursive: true, force: true });
      runs.push(await runCli(['weights', join(dir, 'model.safetensors.index.json'), '-o', join(dir, 'out'), '--bits', '4', '--group-size', '128', '-q']));
    }
    const peak = Math.max(...runs.map((r) => r.maxRssKib)) / 1024;
    const ms = median(runs.map((r) => r.ms));
    const totalMib = total / MiB;
    const tensorMib = weight.length / MiB;
    const details: Detail[] = [
      { name: 'checkpoint size (4 F16 shards)', value: totalMib, unit: 'MiB' },
      { name: 'largest tensor', value: tensorMib, unit: 'MiB' },
      { name: 'peak RSS of `quantd --version` (the process floor)', value: idle.maxRssKib / 1024, unit: 'MiB' },
      { name: `wall time, median of ${n} (process start to exit)`, value: ms / 1000, unit: 's' },
    ];
    return {
      rows: [
        row({ name: 'weights.sharded_peak_rss', value: peak, unit: 'MiB', baselineName: 'checkpoint size', baselineValue: totalMib, better: 'lower', target: o.quick ? null : 0.75, note: `quantd weights on ${shards} shards x ${perShard} F16 [${rows}, ${cols}] weights, 4-bit groups of 128; maxRSS of the whole process` }),
        row({ name: 'weights.rss_over_floor', value: peak - idle.maxRssKib / 1024, unit: 'MiB', baselineName: 'largest tensor', baselineValue: tensorMib, better: 'lower', target: 8, note: 'peak RSS above the bare CLI process, in largest-tensor sizes: bounded by one tensor in flight, not by the checkpoint' }),
        row({ name: 'weights.sharded_mib_per_s', value: totalMib / (ms / 1000), unit: 'MiB/s', baselineName: null, baselineValue: null, better: 'higher', target: null, note: 'checkpoint MiB per second of wall time, process start included' }),
      ],
      details,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

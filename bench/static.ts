import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { calibrationSamplesFromNpz } from '../src/onnx/activations/calibration-data.js';
import { HostRuns } from '../src/onnx/activations/host-runs.js';
import { calibrationHost } from '../src/onnx/runtime/host/client.js';
import { quantizeStatic, type StaticRequest } from '../src/onnx/activations/quantize-static.js';
import { decodeModel } from '../src/onnx/proto/decode.js';
import { encodeModelBytes } from '../src/onnx/proto/encode.js';
import { fusedOps } from '../src/onnx/runtime/fused-ops.js';
import { measureLatency } from '../src/onnx/runtime/latency.js';
import { modelQuantOptions } from '../src/onnx/weights/options.js';
import { row, type BenchOptions, type Detail, type Row, type ScenarioResult } from './lib/rows.js';

// Static int8 quantization of PyTorch exports (bench/models/generate_static.py writes them and
// their calibration samples into bench/.cache/static, gitignored): 96 samples, 32 calibrate
// and 64 are held back for cosine / top-1. Speed is onnxruntime-node with one intra-op
// thread, float vs quantized in the same run (median of repeated runs, latency.ts).
// Calibration and the fallback's measurements run in the onnxruntime host process, as the
// service runs them (host-runs.ts); for resnet18 the same quantization in this thread too,
// for the cost of the hand-over.

const CACHE = 'bench/.cache/static';
const SCRIPT = 'bench/models/generate_static.py';

interface Case {
  key: string;
  model: string;
  npz: string;
  speedup: number;
  cosine: number;
  top1?: number;
  target?: StaticRequest['target'];
}

const CASES: Case[] = [
  { key: 'resnet18', model: 'resnet18.onnx', npz: 'images224.npz', speedup: 2.5, cosine: 0.999, top1: 0.98 },
  { key: 'mobilenet_v3_small', model: 'mobilenet_v3_small.onnx', npz: 'images224.npz', speedup: 1.5, cosine: 0.995 },
  { key: 'bert_encoder', model: 'bert_encoder.onnx', npz: 'hidden.npz', speedup: 1.5, cosine: 0.99 },
  { key: 'detection', model: 'detection.onnx', npz: 'images128.npz', speedup: 1, cosine: 0.99, target: { snrDb: 25 } },
];

function ensureModels(): string | undefined {
  if (CASES.every((c) => existsSync(join(CACHE, c.model)) && existsSync(join(CACHE, c.npz)))) return undefined;
  // Debian's interpreter first: it is the one that has python3-torch; another python3 earlier on PATH may not.
  const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const r = spawnSync(python, [SCRIPT], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error || r.status !== 0) return `not measured: ${python} ${SCRIPT} failed (${r.error?.message ?? r.stderr.trim().split('\n').at(-1)}); it needs python3 with torch, torchvision, numpy and PIL`;
  return undefined;
}

function skipped(note: string): ScenarioResult {
  return { rows: [row({ name: 'static.resnet18.speedup', value: null, unit: 'ms', baselineName: null, baselineValue: null, better: 'higher', target: 2.5, note })], details: [] };
}

async function one(c: Case, o: BenchOptions, rows: Row[], details: Detail[]): Promise<void> {
  const bytes = readFileSync(join(CACHE, c.model));
  const model = decodeModel(bytes);
  const samples = calibrationSamplesFromNpz(readFileSync(join(CACHE, c.npz)), model, { maxBytes: 2 ** 31, maxSamples: 4096 });
  const req: StaticRequest = { activationType: 'uint8', calibration: 'minmax', heldBack: 64, weights: modelQuantOptions({ bits: 8, format: 'qdq' }), target: c.target };
  const rss0 = process.memoryUsage().rss;
  let peak = rss0;
  let hostPeak = 0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
    hostPeak = Math.max(hostPeak, rssOf(calibrationHost().pid));
  }, 20);
  const runs = new HostRuns({ model, bytes, files: [] });
  let outcome;
  try {
    outcome = await quantizeStatic(model, samples, req, { runs });
  } finally {
    clearInterval(sampler);
    runs.dispose();
  }
  if (c.key === 'resnet18') {
    const local = await quantizeStatic(model, samples, req);
    const ms = (x: typeof local) => x.calibrationMs / x.calibrationSamples;
    details.push(
      { name: `${c.key}: calibration ms per sample in this thread (no host; the service's path before)`, value: ms(local), unit: 'ms' },
      { name: `${c.key}: calibration in the host / in this thread, ms per sample`, value: ms(outcome) / ms(local), unit: '×' },
      { name: `${c.key}: calibration + quantize + measure in this thread`, value: local.calibrationMs + local.quantizeMs, unit: 'ms' },
    );
  }
  const q = encodeModelBytes(outcome.fallback.quantized.model);
  const fused = await fusedOps({ bytes: q });
  const lat = await measureLatency({ bytes }, { bytes: q }, { budgetMs: o.quick ? 1500 : 5000, minRuns: 5, maxRuns: 200 });
  const one = lat.status === 'ok' ? lat.rows.find((r) => r.intra_op_threads === 1)! : undefined;
  const all = lat.status === 'ok' ? lat.rows.find((r) => r.intra_op_threads === 0)! : undefined;
  const outs = outcome.fallback.errors.outputs;
  const cosine = Math.min(...outs.map((x) => x.cosine_similarity));
  const convs = model.graph.nodes.filter((n) => n.opType === 'Conv').length;
  const f = fused.status === 'ok' ? fused : undefined;
  const fusedList = f ? Object.entries(f.fused).map(([k, v]) => `${k} ${v}`).join(', ') : fused.status;
  const floatLeft = f ? Object.entries(f.float_compute).map(([k, v]) => `${k} ${v}`).join(', ') || 'none' : '?';
  const excluded = outcome.fallback.excluded.map((e) => e.node).join(', ');
  rows.push(
    row({
      name: `static.${c.key}.speedup`,
      value: one?.quantized_ms ?? null,
      unit: 'ms',
      baselineName: 'float model, same run, 1 intra-op thread',
      baselineValue: one?.original_ms ?? null,
      better: 'higher',
      invert: true,
      target: c.speedup,
      note: `fused: ${fusedList}; float compute left: ${floatLeft}; default threads: float ${all?.original_ms.toFixed(1)} ms, int8 ${all?.quantized_ms.toFixed(1)} ms${excluded ? `; kept float by the fallback: ${excluded}` : ''}`,
    }),
    row({
      name: `static.${c.key}.cosine`,
      value: cosine,
      unit: 'cos',
      baselineName: 'identical outputs',
      baselineValue: 1,
      better: 'higher',
      target: c.cosine,
      note: `min over outputs of the mean cosine on ${outcome.heldBackSamples} held-back samples; output SNR ${outs.map((x) => `${x.name} ${x.snr_db?.toFixed(1)} dB`).join(', ')}`,
    }),
  );
  if (convs) rows.push(row({ name: `static.${c.key}.convs_fused`, value: f?.fused.QLinearConv ?? 0, unit: 'conv', baselineName: 'Conv nodes in the float model', baselineValue: convs, better: 'higher', target: c.target ? null : 1 }));
  if (c.top1 !== undefined) {
    const t = outs[0]!.top1_agreement;
    rows.push(row({ name: `static.${c.key}.top1`, value: t, unit: 'share', baselineName: 'float top-1', baselineValue: 1, better: 'higher', target: c.top1, note: `${outcome.heldBackSamples} held-back images` }));
  }
  if (c.target) {
    const h = outcome.fallback.history;
    rows.push(
      row({
        name: `static.${c.key}.fallback_snr`,
        value: h.at(-1)!.min_output_snr_db,
        unit: 'dB',
        baselineName: `target_snr_db`,
        baselineValue: c.target.snrDb ?? null,
        better: 'higher',
        target: 1,
        note: `fully quantized: worst output ${h[0]!.min_output_snr_db?.toFixed(1)} dB; after ${outcome.fallback.rounds} round(s) with ${excluded || 'nothing'} in float: ${h.at(-1)!.min_output_snr_db?.toFixed(1)} dB`,
      }),
    );
  }
  const perSample = outcome.calibrationMs / outcome.calibrationSamples;
  if (c.key === 'resnet18' && one) {
    rows.push(
      row({
        name: 'static.calibration_rate',
        value: 1000 / perSample,
        unit: 'samples/s',
        baselineName: 'float inference rate, 1 thread',
        baselineValue: 1000 / one.original_ms,
        better: 'higher',
        target: 0.5,
        note: `resnet18, ${outcome.calibrationSamples} samples, every Conv/Add/Pool tensor exposed, optimization disabled (as onnxruntime's calibrator)`,
      }),
    );
  }
  details.push(
    { name: `${c.key}: calibration ms per sample`, value: perSample, unit: 'ms' },
    { name: `${c.key}: calibration + quantize + measure`, value: outcome.calibrationMs + outcome.quantizeMs, unit: 'ms' },
    { name: `${c.key}: peak RSS growth of this process during static quantization (model ${(bytes.length / 2 ** 20).toFixed(0)} MiB)`, value: (peak - rss0) / 2 ** 20, unit: 'MiB' },
    { name: `${c.key}: peak RSS of the onnxruntime host during static quantization`, value: hostPeak / 2 ** 20, unit: 'MiB' },
  );
  o.log(`static ${c.key}: ${one?.original_ms.toFixed(2)} → ${one?.quantized_ms.toFixed(2)} ms, cosine ${cosine.toFixed(5)}, ${fusedList}`);
}

/** Resident bytes of a process (0 when it is gone). */
function rssOf(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    return Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * 4096;
  } catch {
    return 0;
  }
}

export async function run(o: BenchOptions): Promise<ScenarioResult> {
  const missing = ensureModels();
  if (missing) return skipped(missing);
  const rows: Row[] = [];
  const details: Detail[] = [];
  for (const c of CASES) await one(c, o, rows, details);
  return { rows, details };
}

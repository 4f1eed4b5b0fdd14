import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { graph, model, node, valueInfo } from '../src/onnx/graph/build.js';
import { encodeModelBytes } from '../src/onnx/proto/encode.js';
import { DataType, type OnnxTensor } from '../src/onnx/proto/model.js';
import { runQuantizeModelFiles } from '../src/pool/tasks/quantize-model-files.js';

// A model past protobuf's 2 GiB limit through the jobs path (files in, files out), in a
// child process so its peak RSS is the quantization's alone. Usage:
//   node dist/bench/model-big.js [--gb 2.3] [--bits 8] [--validate] [--max-inline BYTES]
// prints the machine, S (model + external data), the time and the peak RSS / S.

const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : def;
};

/** A chain of square MatMuls whose weights all live in model.onnx.data, written in chunks. */
function generate(dir: string, gb: number): void {
  const side = 8192;
  const layerBytes = side * side * 4;
  const layers = Math.max(1, Math.round((gb * 2 ** 30) / layerBytes));
  const fd = openSync(join(dir, 'model.onnx.data'), 'w');
  const rows = 64;
  const chunk = new Float32Array(rows * side);
  let seed = 1;
  const initializers: OnnxTensor[] = [];
  const nodes = [];
  for (let l = 0; l < layers; l++) {
    for (let r = 0; r < side; r += rows) {
      // A cheap LCG is plenty for weights whose values only need to vary.
      for (let i = 0; i < chunk.length; i++) chunk[i] = ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5) * 0.04;
      writeSync(fd, new Uint8Array(chunk.buffer));
    }
    const name = `W${l}`;
    initializers.push({
      name,
      dims: [side, side],
      dataType: DataType.float32,
      dataLocation: 1,
      externalData: [
        { key: 'location', value: 'model.onnx.data' },
        { key: 'offset', value: String(l * layerBytes) },
        { key: 'length', value: String(layerBytes) },
      ],
    });
    nodes.push(node('MatMul', [l === 0 ? 'x' : `h${l - 1}`, name], [l === layers - 1 ? 'y' : `h${l}`], { name: `mm${l}` }));
  }
  closeSync(fd);
  const g = graph({ nodes, initializers, inputs: [valueInfo('x', DataType.float32, [1, side])], outputs: [valueInfo('y', DataType.float32, [1, side])] });
  const bytes = encodeModelBytes(model(g));
  const mfd = openSync(join(dir, 'model.onnx'), 'w');
  writeSync(mfd, bytes);
  closeSync(mfd);
}

async function child(dir: string): Promise<void> {
  const out = join(dir, 'out');
  mkdirSync(out, { recursive: true });
  const t0 = performance.now();
  const reply = await runQuantizeModelFiles({
    op: 'quantizeModelFiles',
    inputDir: dir,
    model: 'model.onnx',
    external: [{ name: 'model.onnx.data', file: 'model.onnx.data' }],
    outputDir: out,
    outputName: 'model.q.onnx',
    maxInlineBytes: args.includes('--max-inline') ? Number(opt('max-inline', '0')) : undefined,
    options: {
      bits: Number(opt('bits', '8')) as 2 | 4 | 8,
      scheme: 'symmetric',
      calibration: 'minmax',
      percentile: 99.99,
      format: 'auto',
      op_types: ['MatMul', 'Gemm', 'Conv'],
      exclude: [],
      min_elements: 1024,
      validate: args.includes('--validate'),
    },
    limits: { maxElements: 2 ** 31, maxDims: 8, maxMatmulMacs: 2 ** 31, maxJsonReplyBytes: 2 ** 28 },
    progressChannel: 'bench',
  });
  const meta = reply.meta as { artifacts: { name: string; size: number }[]; report: { validation: unknown; summary: { quantize_ms: number } } };
  console.log(
    JSON.stringify({
      seconds: (performance.now() - t0) / 1000,
      quantize_seconds: meta.report.summary.quantize_ms / 1000,
      max_rss_bytes: process.resourceUsage().maxRSS * 1024,
      artifacts: meta.artifacts,
      validation: meta.report.validation,
    }),
  );
}

if (args[0] === 'child') {
  await child(args[1]!);
} else {
  const dir = mkdtempSync(join(tmpdir(), 'quantd-big-'));
  try {
    const gb = Number(opt('gb', '2.3'));
    const t0 = performance.now();
    generate(dir, gb);
    const S = statSync(join(dir, 'model.onnx')).size + statSync(join(dir, 'model.onnx.data')).size;
    console.log(`machine: ${cpus()[0]?.model} × ${cpus().length}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`);
    console.log(`model: ${(S / 2 ** 30).toFixed(2)} GiB (S) in model.onnx + model.onnx.data, generated in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const run = spawnSync(process.execPath, [fileURLToPath(import.meta.url), 'child', dir, ...args], { encoding: 'utf8', maxBuffer: 1 << 24 });
    if (run.status !== 0) throw new Error(run.stderr);
    const r = JSON.parse(run.stdout.trim().split('\n').at(-1)!);
    const out = r.artifacts.reduce((s: number, a: { size: number }) => s + a.size, 0);
    console.log(`bits ${opt('bits', '8')}${args.includes('--validate') ? ' + validation' : ''}: ${r.seconds.toFixed(1)} s (quantize ${r.quantize_seconds.toFixed(1)} s), output ${(out / 2 ** 30).toFixed(2)} GiB as ${r.artifacts.map((a: { name: string }) => a.name).join(' + ')}`);
    console.log(`peak RSS ${(r.max_rss_bytes / 2 ** 30).toFixed(2)} GiB = ${(r.max_rss_bytes / S).toFixed(2)} × S`);
    if (args.includes('--validate')) console.log(`validation: ${JSON.stringify(r.validation).slice(0, 400)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

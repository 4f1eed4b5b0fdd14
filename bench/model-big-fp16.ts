import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { graph, model, node, valueInfo } from '../src/onnx/graph/build.js';
import { encodeModelBytes } from '../src/onnx/proto/encode.js';
import { DataType, type OnnxNode, type OnnxTensor } from '../src/onnx/proto/model.js';
import { row, type BenchOptions, type Detail, type ScenarioResult } from './lib/rows.js';

// onnx.fp16_8gib_int4_job (issue 14 target 8), run by `node dist/bench/run.js --big`: float16
// models of 1, 2, 4 and 8 GiB (`--sizes=1,2,4,8`), made of LLaMA-7B-shaped blocks (q, k, v, o
// of 4096 x 4096; gate and up 4096 x 11008; down 11008 x 4096), all weights in one external
// data file, each quantized to 4-bit MatMulNBits (g32) through the jobs path
// (runQuantizeModelFiles, files in and out) in a child process of its own, whose peak RSS
// (VmHWM in /proc) is the figure held to 1.5 GiB; then the result is loaded in onnxruntime
// (session create and one run) in another child. Generated files are deleted after each size.

const HIDDEN = 4096;
const FFN = 11008;
const SHAPES: [string, number, number][] = [
  ['q', HIDDEN, HIDDEN],
  ['k', HIDDEN, HIDDEN],
  ['v', HIDDEN, HIDDEN],
  ['o', HIDDEN, HIDDEN],
  ['gate', HIDDEN, FFN],
  ['up', HIDDEN, FFN],
  ['down', FFN, HIDDEN],
];
const BLOCK_BYTES = SHAPES.reduce((s, [, k, n]) => s + 2 * k * n, 0);

/** 32 MiB of random float16 bit patterns, magnitudes 2^-9..2^-4 (weights' range), either sign. */
function halfPool(): Uint16Array {
  const pool = new Uint16Array(16 << 20);
  let s = 12345;
  for (let i = 0; i < pool.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const exp = 6 + ((s >>> 10) % 6);
    pool[i] = ((s >>> 31) << 15) | (exp << 10) | (s & 0x3ff);
  }
  return pool;
}

/** The model: blocks x = down(gate(o(q + k + v)) * up(...)), float16 throughout; returns S in bytes. */
export function generate(dir: string, blocks: number): number {
  const pool = new Uint8Array(halfPool().buffer);
  const fd = openSync(join(dir, 'model.onnx.data'), 'w');
  const initializers: OnnxTensor[] = [];
  const nodes: OnnxNode[] = [];
  let offset = 0;
  let turn = 0;
  const weight = (name: string, K: number, N: number) => {
    const bytes = 2 * K * N;
    // The pool from a different place each weight, so no two are alike.
    let at = (turn++ * 7919 * 64) % pool.length;
    for (let done = 0; done < bytes; ) {
      const n = Math.min(bytes - done, pool.length - at);
      writeSync(fd, pool, at, n);
      done += n;
      at = 0;
    }
    initializers.push({
      name,
      dims: [K, N],
      dataType: DataType.float16,
      dataLocation: 1,
      externalData: [
        { key: 'location', value: 'model.onnx.data' },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(bytes) },
      ],
    });
    offset += bytes;
  };
  let x = 'x';
  for (let b = 0; b < blocks; b++) {
    for (const [name, K, N] of SHAPES) weight(`b${b}.${name}`, K, N);
    const mm = (w: string, input: string) => {
      const out = `b${b}.${w}.out`;
      nodes.push(node('MatMul', [input, `b${b}.${w}`], [out], { name: `b${b}.${w}` }));
      return out;
    };
    const [q, k, v] = [mm('q', x), mm('k', x), mm('v', x)];
    nodes.push(node('Add', [q, k], [`b${b}.qk`], { name: `b${b}.add1` }), node('Add', [`b${b}.qk`, v], [`b${b}.qkv`], { name: `b${b}.add2` }));
    const o = mm('o', `b${b}.qkv`);
    const [g, u] = [mm('gate', o), mm('up', o)];
    nodes.push(node('Mul', [g, u], [`b${b}.gu`], { name: `b${b}.mul` }));
    x = mm('down', `b${b}.gu`);
  }
  closeSync(fd);
  nodes.push(node('Identity', [x], ['y'], { name: 'out' }));
  const g = graph({ nodes, initializers, inputs: [valueInfo('x', DataType.float16, [1, HIDDEN])], outputs: [valueInfo('y', DataType.float16, [1, HIDDEN])] });
  const bytes = encodeModelBytes(model(g, { opset: 17 }));
  const mfd = openSync(join(dir, 'model.onnx'), 'w');
  writeSync(mfd, bytes);
  closeSync(mfd);
  return bytes.length + offset;
}

function vmHwm(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : process.resourceUsage().maxRSS * 1024;
}

async function quantizeChild(dir: string): Promise<void> {
  const { runQuantizeModelFiles } = await import('../src/pool/tasks/quantize-model-files.js');
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
    options: {
      bits: 4,
      scheme: 'symmetric',
      granularity: 'per_group',
      group_size: 32,
      calibration: 'minmax',
      percentile: 99.99,
      format: 'matmulnbits',
      op_types: ['MatMul', 'Gemm', 'Conv'],
      exclude: [],
      min_elements: 1024,
      validate: false,
    },
    limits: { maxElements: 2 ** 32, maxDims: 8, maxMatmulMacs: 2 ** 31, maxJsonReplyBytes: 2 ** 28 },
    progressChannel: 'bench-big',
  });
  const meta = reply.meta as { artifacts: { name: string; size: number }[]; report: { summary: { quantize_ms: number }; tensors: unknown[] } };
  console.log(JSON.stringify({ seconds: (performance.now() - t0) / 1000, quantize_seconds: meta.report.summary.quantize_ms / 1000, vm_hwm: vmHwm(), artifacts: meta.artifacts, tensors: meta.report.tensors.length }));
}

async function ortChild(path: string): Promise<void> {
  const ort = await import('onnxruntime-node');
  const t0 = performance.now();
  const session = await ort.InferenceSession.create(path, { intraOpNumThreads: 2 });
  const created = (performance.now() - t0) / 1000;
  const x = new Uint16Array(HIDDEN).fill(0x2000); // 2^-7
  const t1 = performance.now();
  const out = await session.run({ x: new ort.Tensor('float16', x, [1, HIDDEN]) });
  const ran = (performance.now() - t1) / 1000;
  const y = out.y!;
  console.log(JSON.stringify({ created, ran, output_dims: y.dims, nodes: session.inputNames.length, vm_hwm: vmHwm() }));
  await session.release();
}

function child(args: string[], what: string): Record<string, unknown> {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), ...args], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`${what} failed (${r.signal ?? r.status}): ${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
}

const GIB = 2 ** 30;

export async function run(o: BenchOptions & { sizes?: number[] }): Promise<ScenarioResult> {
  const sizes = o.sizes ?? (o.quick ? [0.5, 1] : [1, 2, 4, 8]);
  const details: Detail[] = [];
  const per: { gib: number; sPerGib: number; hwm: number; S: number }[] = [];
  let ortOk = true;
  for (const gib of sizes) {
    const blocks = Math.max(1, Math.round((gib * GIB) / BLOCK_BYTES));
    const dir = mkdtempSync(join(tmpdir(), 'quantd-fp16-'));
    try {
      const t0 = performance.now();
      const S = generate(dir, blocks);
      const genS = (performance.now() - t0) / 1000;
      const q = child(['child', dir], 'the quantization child') as { seconds: number; quantize_seconds: number; vm_hwm: number; artifacts: { name: string; size: number }[] };
      const outBytes = q.artifacts.reduce((s, a) => s + a.size, 0);
      const label = `${(S / GIB).toFixed(2)} GiB (${blocks} blocks, ${blocks * SHAPES.length} MatMul)`;
      o.log(`  ${label}: generated in ${genS.toFixed(1)} s; job ${q.seconds.toFixed(1)} s (quantize ${q.quantize_seconds.toFixed(1)} s), output ${(outBytes / GIB).toFixed(2)} GiB as ${q.artifacts.map((a) => a.name).join(' + ')}, peak RSS ${(q.vm_hwm / GIB).toFixed(2)} GiB`);
      per.push({ gib: S / GIB, sPerGib: q.seconds / (S / GIB), hwm: q.vm_hwm, S });
      details.push(
        { name: `${label}: job seconds per GiB`, value: q.seconds / (S / GIB), unit: 's/GiB' },
        { name: `${label}: quantize stage seconds per GiB`, value: q.quantize_seconds / (S / GIB), unit: 's/GiB' },
        { name: `${label}: peak RSS of the job's process`, value: q.vm_hwm / GIB, unit: 'GiB' },
        { name: `${label}: output`, value: outBytes / GIB, unit: 'GiB' },
      );
      rmSync(join(dir, 'model.onnx.data'), { force: true });
      try {
        const r = child(['ort', join(dir, 'out', 'model.q.onnx')], 'onnxruntime') as { created: number; ran: number; vm_hwm: number };
        o.log(`  ${label}: onnxruntime session ${r.created.toFixed(1)} s, one run ${(r.ran * 1000).toFixed(0)} ms, its RSS ${(r.vm_hwm / GIB).toFixed(2)} GiB`);
        details.push({ name: `${label}: onnxruntime session create`, value: r.created, unit: 's' }, { name: `${label}: onnxruntime run of [1, 4096]`, value: r.ran * 1000, unit: 'ms' });
      } catch (err) {
        ortOk = false;
        o.log(`  ${label}: onnxruntime did not load or run the result: ${(err as Error).message.slice(0, 300)}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const last = per.at(-1)!;
  const first = per[0]!;
  const note = `float16, LLaMA-7B-shaped MatMul blocks, 4-bit MatMulNBits g32 through runQuantizeModelFiles in a child process; sizes ${per.map((p) => p.gib.toFixed(2)).join(', ')} GiB; onnxruntime ${ortOk ? 'loaded and ran every result' : 'FAILED on a result'}`;
  return {
    rows: [
      row({ name: 'onnx.fp16_8gib_int4_job', value: last.hwm / GIB, unit: 'GiB', baselineName: 'target: 1.5 GiB peak RSS', baselineValue: 1.5, better: 'lower', target: 1, note: `peak RSS (VmHWM) of the job's process at ${last.gib.toFixed(2)} GiB; ${note}` }),
      row({ name: 'onnx.fp16_int4_job_linearity', value: last.sPerGib, unit: 's/GiB', baselineName: `s/GiB at ${first.gib.toFixed(2)} GiB`, baselineValue: first.sPerGib, better: 'lower', target: 1.25, note: `job seconds per GiB at ${last.gib.toFixed(2)} GiB over the smallest size's (1 = linear)` }),
    ],
    details,
  };
}

const self = fileURLToPath(import.meta.url);
if (process.argv[1] === self) {
  const [mode, arg] = process.argv.slice(2);
  if (mode === 'child') await quantizeChild(arg!);
  else if (mode === 'ort') await ortChild(arg!);
  else throw new Error('usage: node dist/bench/run.js --big [--sizes=1,2,4,8]');
}


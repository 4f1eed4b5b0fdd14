import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES } from './fixtures.js';
import { jsonObjects, numberAfter, onlyJson, readModel, readNpz, readSafetensors } from './outputs.js';

// What each named README example must do, beyond exiting 0 with every HTTP answer it got
// below 400 (the suite checks both for all of them): the fields, files and figures its
// text promises. Keyed by the name in its `<!-- example: NAME -->` marker.

export interface Response {
  method: string;
  url: string;
  statusCode: number;
}

export interface Outcome {
  stdout: string;
  stderr: string;
  /** The examples' work directory (the block ran there unless `cwd` says otherwise). */
  dir: string;
  /** What the suite's server answered while the block ran. */
  responses: Response[];
  /** The suite's server, to compare an example's answer with a direct request. */
  base: string;
}

export interface Example {
  /** Model files to put in place of the default ones for this block (fixtures.ts modelVariants). */
  models?: 'detector' | 'external';
  /** Arguments for a python block run as a script. */
  args?: string[];
  /** Run in the repository instead of the work directory ("run it in the repository"). */
  cwd?: 'repo';
  timeoutMs?: number;
  /** A block that serves until stopped: rewrite its port, then stop it once `ready` holds. */
  serves?: { port: (code: string, port: number) => string; ready: (port: number) => Promise<boolean> };
  check: (o: Outcome) => void | Promise<void>;
}

type Obj = Record<string, unknown>;
const obj = (v: unknown) => v as Obj;

function requestsTo(o: Outcome, route: string, n: number): void {
  const hits = o.responses.filter((r) => r.url.split('?')[0] === route || r.url.startsWith(route));
  assert.equal(hits.length, n, `${n} request(s) to ${route}: ${JSON.stringify(o.responses)}`);
}

const healthy = async (port: number) => (await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200;

export const EXAMPLES: Record<string, Example> = {
  'gptq-layer': {
    check(o) {
      assert.match(o.stdout, /'statistics': 'activations'/);
      assert.match(o.stdout, /'activation_rows': 2048/);
      // The README: gptq trades weight error for output error, above rtn's on the output.
      assert.ok(numberAfter(o.stdout, "'output_snr_db':") > numberAfter(o.stdout, "'rtn_output_snr_db':"), o.stdout);
    },
  },
  'gptq-xtx-npz': {
    check(o) {
      const [gptq, rtn] = o.stdout.trim().split(/\s+/).map(Number);
      assert.ok(Number.isFinite(gptq) && Number.isFinite(rtn), o.stdout);
      assert.ok(gptq! > rtn!, `gptq ${gptq} dB not above rtn ${rtn} dB`);
    },
  },
  'quantize-json': {
    check(o) {
      const r = onlyJson(o.stdout);
      assert.equal(obj(r.quantized).dtype, 'int4');
      assert.deepEqual(r.shape, [2, 3]);
      assert.equal((r.scale as number[]).length, 2, 'one scale per channel');
      assert.equal((obj(r.quantized).values as number[]).length, 6);
    },
  },
  'quantize-npy-npz': {
    check(o) {
      const npz = readNpz(join(o.dir, 'w.q8.npz'));
      assert.deepEqual(npz.arrays.get('quantized'), { dtype: 'int8', shape: [256, 512] });
      assert.deepEqual(npz.arrays.get('scale')?.shape, [256]);
      assert.ok(obj(npz.report!.error).snr_db as number > 30);
    },
  },
  'quantize-raw': {
    check(o) {
      const lines = o.stdout.split('\n');
      assert.equal(lines[0]!.length, 300, 'head -c 300 of the JSON reply');
      assert.match(lines[0]!, /^\{"shape":\[256,512\]/);
    },
  },
  'dequantize-round-trip': {
    check(o) {
      const q = onlyJson(readFileSync(join(o.dir, 'q.json'), 'utf8'));
      const r = onlyJson<{ shape: number[]; data: string }>(o.stdout);
      assert.deepEqual(r.shape, [4]);
      const x = new Float32Array(new Uint8Array(Buffer.from(r.data, 'base64')).buffer);
      const half = (q.scale as number) / 2;
      [0.1, -0.5, 0.25, 2.0].forEach((v, i) => assert.ok(Math.abs(x[i]! - v) <= half, `x[${i}] = ${x[i]}`));
    },
  },
  analyze: {
    check(o) {
      // The last 30 lines of the pretty-printed reply end with the recommendation, which
      // reaches the target.
      assert.equal(o.stdout.trimEnd().split('\n').length, 30);
      const rec = o.stdout.slice(o.stdout.indexOf('"recommended": {'));
      assert.ok(rec.length > 20, o.stdout);
      assert.ok(numberAfter(rec, '"snr_db":') >= 30, rec);
    },
  },
  'analyze-recommended': {
    check(o) {
      const r = onlyJson<{ bits: number; calibration: string; method: string; snr: number }>(o.stdout);
      assert.ok([3, 4].includes(r.bits));
      assert.ok(['rtn', 'lsq', 'hqq'].includes(r.method));
      assert.ok(r.snr >= 22, `recommended below the target: ${r.snr}`);
    },
  },
  'compare-methods': {
    check(o) {
      const r = onlyJson<{ method: string; methods: Record<string, number>; snr: number }>(o.stdout);
      assert.equal(r.method, 'lsq');
      assert.deepEqual(Object.keys(r.methods).sort(), ['hqq', 'lsq', 'rtn']);
      assert.equal(r.methods.lsq, r.snr, 'the reply is lsq');
      assert.ok(r.methods.lsq! >= r.methods.rtn!, 'lsq is never worse than rtn');
    },
  },
  matmul: {
    check(o) {
      const r = onlyJson<Obj>(o.stdout);
      assert.deepEqual(r.shape, [2, 2]);
      // [[1, 2], [3, 4]] · [[0.5, -1], [2, 0.25]] = [[4.5, -0.5], [9.5, -2]]
      const y = new Float32Array(new Uint8Array(Buffer.from(obj(r.result).data as string, 'base64')).buffer);
      [4.5, -0.5, 9.5, -2].forEach((v, i) => assert.ok(Math.abs(y[i]! - v) < 0.05, `y[${i}] = ${y[i]}`));
    },
  },
  'given-parameters': {
    check(o) {
      const [perChannel, raw, dequantized] = jsonObjects(o.stdout).filter((r) => r.shape || r.data);
      // QuantizeLinear by hand: round(x / scale) + zero_point, rows scaled by 0.01 and 0.02.
      assert.deepEqual(obj(perChannel!.quantized).values, [10, -50, 25, 97, 72, -53]);
      assert.deepEqual(perChannel!.calibration, { method: 'given', percentile: null });
      assert.match(o.stdout, /\{'method': 'given', 'percentile': None\} \{'max_error'/);
      // [[1, 2, 3], [4, 5, 6]] / [1, 0.75, 0.5] per column, int4 saturating at 7.
      assert.deepEqual(obj(raw!.quantized).values, [1, 3, 6, 4, 7, 7]);
      const x = Array.from(new Float32Array(new Uint8Array(Buffer.from(dequantized!.data as string, 'base64')).buffer));
      // DequantizeLinear in float32: (q - zero_point) * scale, which gives back x to within a step.
      const expected = [10, -50, 25, 97, 72, -53].map((q, i) => (i < 3 ? Math.fround(q * Math.fround(0.01)) : Math.fround((q + 3) * Math.fround(0.02))));
      assert.deepEqual(x, expected);
      assert.ok(x.every((v, i) => Math.abs(v - [0.1, -0.5, 0.25, 2.0, 1.5, -1.0][i]!) < 1e-6));
    },
  },
  'python-client': {
    check(o) {
      const lines = o.stdout.trim().split('\n');
      assert.equal(lines.length, 5, o.stdout);
      assert.match(lines[0]!, /^int4 \(256, 8\) \d+\.\d+/);
      const [mine, theirs] = lines[1]!.split(' ').slice(-2);
      assert.match(lines[1]!, /^int8 \(256, 512\) \(256,\)/);
      assert.ok(Math.abs(Number(mine) - Number(theirs)) <= 1e-6 * Number(theirs), `the same MSE to 1e-6 relative: ${lines[1]}`);
      assert.match(lines[2]!, /^\(256, 512\) /);
      assert.equal(lines[3], 'int8 (256, 512) True', 'QuantizeLinear formula');
      assert.equal(lines[4], '(256, 512) True', 'dequantized as the formula');
    },
  },
  'model-quantize': {
    check(o) {
      const m = readModel(o.dir, 'model.4bit.onnx');
      assert.ok(m.ops.includes('MatMulNBits'), m.ops.join());
      requestsTo(o, '/v1/models/quantize', 1);
    },
  },
  'model-summary-header': {
    check(o) {
      const s = onlyJson<Obj>(o.stdout);
      assert.ok((s.compression_ratio as number) > 1, o.stdout);
      assert.equal(obj(s.validation).status, 'ok');
      assert.ok(readModel(o.dir, 'model.8bit.onnx').ops.includes('DequantizeLinear'));
    },
  },
  'model-onnxruntime-node': {
    cwd: 'repo',
    check(o) {
      assert.equal(o.stdout.trim(), "[ 'ids' ] -> [ 'logits' ]");
    },
  },
  'model-report': {
    check(o) {
      const r = onlyJson<{ summary: Obj; validation: unknown[]; worst: { snr_db: number }[]; skipped: unknown[] }>(o.stdout);
      assert.ok((r.summary.compression_ratio as number) > 1);
      assert.ok(typeof obj(r.summary.worst_tensor).name === 'string');
      assert.equal(r.worst.length, 3);
      assert.deepEqual(r.worst.map((t) => t.snr_db), [...r.worst.map((t) => t.snr_db)].sort((a, b) => a - b), 'worst first');
      assert.ok(Array.isArray(r.validation) && r.validation.length === 1);
    },
  },
  exclude: {
    check(o) {
      // The second line's result: layers.0.* and lm_head kept float, the embedding quantized.
      const m = readModel(o.dir, 'model.4bit.onnx');
      for (const name of ['layers.0.fc1.weight', 'layers.0.fc2.weight', 'lm_head.weight']) assert.equal(m.initializers.get(name), 'float32', name);
      assert.equal(m.initializers.has('embed_tokens'), false, 'the embedding is quantized');
      requestsTo(o, '/v1/models/quantize', 2);
    },
  },
  'validate-dims': {
    models: 'detector',
    check(o) {
      const v = onlyJson<{ status: string; dims: Obj; cosine: number[] }>(o.stdout);
      assert.equal(v.status, 'ok', 'real sizes make the comparison conclusive');
      assert.deepEqual(v.dims, { height: 640, width: 640 });
      assert.ok(v.cosine.length > 0 && v.cosine.every((c) => c > 0.99), JSON.stringify(v.cosine));
    },
  },
  'validate-inputs': {
    check(o) {
      assert.equal(o.stdout.trim(), "ok [{'name': 'ids', 'dtype': 'int64', 'shape': [1, 6], 'source': 'user'}]");
    },
  },
  'external-data': {
    models: 'external',
    check(o) {
      const m = readModel(o.dir, 'model.4bit.onnx');
      assert.equal(m.externalTensors, 0, 'self-contained');
      assert.ok(m.ops.includes('MatMulNBits'));
    },
  },
  'gptq-model': {
    timeoutMs: 180_000,
    check(o) {
      const report = JSON.parse(readFileSync(join(o.dir, 'lm.gptq.json'), 'utf8')) as Obj;
      assert.equal(obj(report.summary).method, 'gptq');
      const outputs = obj(report.data_aware).outputs as Obj[];
      assert.equal(outputs.length, 1);
      const printed = jsonObjects(o.stdout);
      assert.equal(printed[0]!.name, 'logits');
      assert.ok(typeof printed[0]!.snr_db === 'number' && (printed[0]!.snr_db as number) > 10, o.stdout);
      // Every MatMul weight fitted by gptq (the embedding, a Gather, is rtn), each row printed.
      for (const w of ['layers.0.fc1.weight', 'layers.0.fc2.weight', 'lm_head.weight']) assert.match(o.stdout, new RegExp(`^${w.replace(/\./g, '\\.')} gptq[^\n]* SNR [0-9.]+ dB`, 'm'));
      const m = readModel(o.dir, 'lm.gptq.onnx');
      assert.ok(m.ops.includes('MatMulNBits'), m.ops.join());
    },
  },
  static: {
    timeoutMs: 180_000,
    check(o) {
      const m = readModel(o.dir, 'resnet18.int8.onnx');
      assert.ok(m.ops.filter((op) => op === 'QuantizeLinear').length > 0, m.ops.join());
      assert.ok(m.ops.includes('Conv'));
    },
  },
  'calibration-from-images': {
    check(o) {
      const npz = readNpz(join(o.dir, 'samples.npz'));
      const images = readdirSync(join(o.dir, 'images')).length;
      assert.deepEqual(npz.arrays.get('input'), { dtype: 'float32', shape: [images, 1, 3, 224, 224] });
    },
  },
  'static-report': {
    timeoutMs: 180_000,
    check(o) {
      const r = onlyJson<{ speed: { speedup: number }[]; outputs: { cosine_similarity: number; top1_agreement: number }[]; fused: { status: string; fused: Record<string, number> }; worst: { snr_db: number }[] }>(o.stdout);
      assert.equal(r.speed.length, 2, 'one intra-op thread and the default');
      assert.ok(r.speed.every((row) => row.speedup > 0));
      assert.equal(r.outputs.length, 1);
      assert.ok(r.outputs[0]!.cosine_similarity > 0.99 && r.outputs[0]!.top1_agreement >= 0 && r.outputs[0]!.top1_agreement <= 1, JSON.stringify(r.outputs));
      assert.equal(r.fused.status, 'ok');
      assert.ok(r.fused.fused.QLinearConv! > 0, 'onnxruntime fused the convolutions into QLinearConv');
      assert.equal(r.worst.length, 3);
      assert.deepEqual(r.worst.map((a) => a.snr_db), [...r.worst.map((a) => a.snr_db)].sort((a, b) => a - b), 'worst first');
    },
  },
  jobs: {
    async check(o) {
      // After the events' JSON lines: jq's status and summary.
      const [status, summary] = jsonObjects(o.stdout).slice(-2);
      // The events end with the job's end (a small job may be done before they start).
      assert.match(o.stdout, /^(event: progress\ndata: [^\n]*\n\n)*event: end\ndata: \{[^\n]*"status":"succeeded"/);
      assert.equal(status!.status, 'succeeded');
      assert.ok((summary!.tensors_quantized as number) >= 1);
      const sync = await fetch(`${o.base}/v1/models/quantize?bits=4`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: readFileSync(join(o.dir, 'model.onnx')) });
      assert.ok(Buffer.from(await sync.arrayBuffer()).equals(readFileSync(join(o.dir, 'model.4bit.onnx'))), 'model.4bit.onnx is what the synchronous endpoint returns');
      assert.ok(o.responses.some((r) => r.method === 'DELETE' && r.statusCode === 204));
    },
  },
  'weights-quantize': {
    check(o) {
      const f = readSafetensors(join(o.dir, 'model.4bit.safetensors'));
      assert.deepEqual(f.byName.get('model.layers.0.mlp.down_proj.weight_packed'), { dtype: 'I32', shape: [256, 64] });
      assert.deepEqual(f.byName.get('model.layers.0.mlp.down_proj.weight_scale'), { dtype: 'F32', shape: [256, 4] });
      assert.ok(f.byName.has('model.embed_tokens.weight') && f.byName.has('lm_head.weight'), 'embeddings and the head are kept');
    },
  },
  'dequantize-safetensors': {
    args: ['model.4bit.safetensors', 'model.layers.0.mlp.down_proj', 'original.npy'],
    async check(o) {
      const block = readFileSync(join(o.dir, 'dequantize-safetensors.py'), 'utf8');
      assert.equal(block, readFileSync(join(FIXTURES, 'safetensors', 'dequantize.py'), 'utf8'), 'the README block is test/fixtures/safetensors/dequantize.py');
      assert.match(o.stdout, /^model\.layers\.0\.mlp\.down_proj \(256, 512\) float32\n/);
      // The same weight through POST /v1/quantize with the checkpoint's options: the same SNR.
      const res = await fetch(`${o.base}/v1/quantize?bits=4&granularity=per_group&group_size=128`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-npy' },
        body: readFileSync(join(o.dir, 'original.npy')),
      });
      const expected = obj((await res.json()) as Obj).error as { snr_db: number };
      assert.ok(Math.abs(numberAfter(o.stdout, 'snr_db') - expected.snr_db) < 1e-3, `${o.stdout} vs ${expected.snr_db}`);
    },
  },
  'weights-jobs': {
    check(o) {
      const out = join(o.dir, 'model-4bit');
      assert.deepEqual(readdirSync(out).sort(), ['config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json']);
      const config = onlyJson<{ quantization_config: { format: string } }>(readFileSync(join(out, 'config.json'), 'utf8'));
      assert.equal(config.quantization_config.format, 'pack-quantized');
      assert.ok(readSafetensors(join(out, 'model-00002-of-00002.safetensors')).byName.has('model.layers.1.self_attn.o_proj.weight_packed'));
      assert.match(o.stdout, /event: end\ndata: \{[^\n]*"status":"succeeded"/);
    },
  },
  'cli-serve': {
    serves: { port: (code, port) => code.replace('--port 8080', `--port ${port}`), ready: healthy },
    check(o) {
      assert.match(o.stdout, /"msg":"quantd ready"/);
    },
  },
  cli: {
    timeoutMs: 240_000,
    check(o) {
      assert.ok(readModel(o.dir, 'model.int4.onnx').initializers.get('lm_head.weight') === 'float32', 'lm_head excluded');
      // The report beside each output, named as the README says.
      for (const f of ['model.int4.report.json', 'w.q.report.json', 'model.4bit.report.json', 'ckpt-4bit.report.json']) assert.ok(existsSync(join(o.dir, f)), f);
      assert.equal(readNpz(join(o.dir, 'w.q.npz')).arrays.get('quantized')?.dtype, 'int8');
      assert.equal(obj(readNpz(join(o.dir, 'w.q.npz')).report!.error_histogram).bins, 50);
      assert.deepEqual(onlyJson(readFileSync(join(o.dir, 'w.q.json'), 'utf8')).shape, [256, 512]);
      assert.ok(readSafetensors(join(o.dir, 'model.4bit.safetensors')).byName.has('model.layers.0.mlp.down_proj.weight_packed'));
      assert.deepEqual(readdirSync(join(o.dir, 'ckpt-4bit')).sort(), ['config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json']);
      assert.match(o.stdout, /--bits <value>/);
    },
  },
};

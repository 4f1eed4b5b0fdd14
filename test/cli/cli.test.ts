import assert from 'node:assert/strict';
import { REQUEST_FORMATS } from '../../src/http/schemas/models.js';
import { MODEL_BITS } from '../../src/onnx/weights/options.js';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { encodeNpy } from '../../src/codecs/npy.js';
import { decodeNpz, encodeNpz } from '../../src/codecs/npz.js';
import { quantize } from '../../src/core/quantize.js';
import { reportFromSums } from '../../src/core/metrics.js';
import { ModelReport } from '../../src/http/schemas/models.js';
import { decodeModel } from '../../src/onnx/proto/decode.js';
import { gemmMlp, randn } from '../onnx/models.js';
import { MAIN, spawnCli, type Run } from './spawn.js';

// The command-line tool, spawned as a user runs it (node dist/src/cli/main.js, the package's bin).

const dir = mkdtempSync(join(tmpdir(), 'quantd-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const cli = (args: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<Run> => spawnCli(dir, args, env, timeoutMs);

const weights = randn(64 * 96, 7, 0.2);
writeFileSync(join(dir, 'w.npy'), encodeNpy(weights, '<f4', [64, 96]));
writeFileSync(join(dir, 'w.bin'), Buffer.from(weights.buffer));
writeFileSync(join(dir, 'mlp.onnx'), gemmMlp().bytes);

describe('quantd --help', () => {
  it('lists the commands; each command lists its flags, named from the API options', async () => {
    const top = await cli(['--help']);
    assert.equal(top.code, 0);
    for (const c of ['serve', 'quantize', 'tensor']) assert.match(top.stdout, new RegExp(`quantd ${c}`));
    const q = await cli(['quantize', '--help']);
    assert.equal(q.code, 0);
    for (const flag of ['--bits', '--group-size', '--op-types', '--exclude', '--min-elements', '--no-validate', `--format <${REQUEST_FORMATS.join('|')}>`, '--activation-type <uint8|int8|int16>', '--report', '-o, --output']) {
      assert.ok(q.stdout.includes(flag), flag);
    }
    const t = await cli(['tensor', '--help']);
    assert.equal(t.code, 0);
    for (const flag of ['--granularity <per_tensor|per_channel|per_group>', '--histogram-bins', '--include-values', '--shape', '--dtype']) assert.ok(t.stdout.includes(flag), flag);
    const s = await cli(['serve', '--help']);
    assert.equal(s.code, 0);
    assert.match(s.stdout, /--port +PORT/);
    assert.match(s.stdout, /--metrics-token +METRICS_TOKEN/);
  });
});

describe('quantd tensor', () => {
  it('writes the .npz and the report beside it, with the integers of the core, and prints a summary', async () => {
    const r = await cli(['tensor', 'w.npy', '-o', 'w.q.npz', '--bits', '4', '--granularity', 'per_channel', '--scheme', 'asymmetric', '--histogram-bins', '8']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /wrote .*w\.q\.npz/);
    assert.match(r.stdout, /4-bit asymmetric per_channel/);
    assert.match(r.stdout, /SNR \d+\.\d dB/);
    assert.match(r.stderr, /^quantd: quantizing/m, 'plain progress lines when stderr is not a terminal');
    const entries = decodeNpz(new Uint8Array(readFileSync(join(dir, 'w.q.npz'))));
    const expected = quantize(weights, [64, 96], { bits: 4, scheme: 'asymmetric', granularity: 'per_channel', axis: 0, groupSize: 128, calibration: 'minmax', percentile: 99.99 });
    const report = JSON.parse(readFileSync(join(dir, 'w.q.report.json'), 'utf8'));
    assert.deepEqual(report.error, reportFromSums(expected.sums));
    assert.equal(report.error_histogram.counts.reduce((a: number, b: number) => a + b, 0), 64 * 96);
    const ints = entries.find((e) => e.name === 'quantized.npy')!.data;
    // uint8 container: the last 64·96 bytes are the integers.
    assert.deepEqual([...ints.subarray(ints.length - 64 * 96)], [...expected.q]);
  });

  it('-o x.json writes the API\'s JSON reply; --report puts the report where asked', async () => {
    const r = await cli(['tensor', 'w.npy', '-o', 'w.json', '--report', 'rep.json', '-q']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
    const reply = JSON.parse(readFileSync(join(dir, 'w.json'), 'utf8'));
    assert.equal(reply.quantized.dtype, 'int8');
    assert.equal(typeof reply.quantized.data, 'string');
    const report = JSON.parse(readFileSync(join(dir, 'rep.json'), 'utf8'));
    assert.deepEqual(report.error, reply.error);
    assert.equal(report.quantized.data, undefined);
  });

  it('raw bytes with --shape and --dtype', async () => {
    const r = await cli(['tensor', 'w.bin', '--shape', '64,96', '--dtype', 'float32', '-o', 'raw.npz']);
    assert.equal(r.code, 0, r.stderr);
    const a = decodeNpz(new Uint8Array(readFileSync(join(dir, 'raw.npz')))).find((e) => e.name === 'quantized.npy')!.data;
    const expected = quantize(weights, [64, 96], { bits: 8, scheme: 'symmetric', granularity: 'per_tensor', axis: 0, groupSize: 128, calibration: 'minmax', percentile: 99.99 });
    assert.deepEqual([...new Int8Array(a.buffer, a.byteOffset + a.length - 64 * 96, 64 * 96)], [...expected.q]);
  });
});

describe('quantd quantize', () => {
  it('quantizes a model in process: the model, the report beside it, progress lines and a summary', async () => {
    const r = await cli(['quantize', 'mlp.onnx', '-o', 'mlp.int4.onnx', '--bits', '4', '--exclude', 'W2*']);
    assert.equal(r.code, 0, r.stderr);
    const model = decodeModel(new Uint8Array(readFileSync(join(dir, 'mlp.int4.onnx'))));
    assert.ok(model.graph.nodes.length > 0);
    const report = ModelReport.parse(JSON.parse(readFileSync(join(dir, 'mlp.int4.report.json'), 'utf8')));
    assert.equal(report.summary.bits, 4);
    assert.deepEqual(report.tensors.map((t) => t.name), ['W1']);
    assert.equal(report.skipped[0]?.name, 'W2');
    assert.equal(report.validation.status, 'ok');
    for (const phase of ['reference', 'quantizing 100% 1/1 tensors', 'writing', 'validating']) assert.match(r.stderr, new RegExp(`quantd: ${phase}`), phase);
    assert.match(r.stdout, /wrote .*mlp\.int4\.onnx/);
    assert.match(r.stdout, /tensors: 1 quantized, 1 kept float/);
    assert.match(r.stdout, /validation \(weights only\): min cosine 0\.9\d+/);
    assert.match(r.stdout, /excluded by 'W2\*'/);
  });

  it('--method gptq with --calibration samples.npz: the calibrating phase, the data_aware report, GPTQ on both Gemm weights', async () => {
    writeFileSync(join(dir, 'gptq-samples.npz'), encodeNpz([{ name: 'x.npy', data: encodeNpy(randn(8 * 256, 4), '<f4', [8, 1, 256]) }]));
    const r = await cli(['quantize', 'mlp.onnx', '-o', 'mlp.gptq.onnx', '--bits', '4', '--method', 'gptq', '--gptq-act-order', '--calibration', 'gptq-samples.npz', '--no-measure-latency']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /quantd: calibrating/);
    const report = ModelReport.parse(JSON.parse(readFileSync(join(dir, 'mlp.gptq.report.json'), 'utf8')));
    assert.equal(report.summary.method, 'gptq');
    assert.deepEqual(report.data_aware?.gptq, { damp: 0.01, block_size: 128, act_order: true });
    assert.equal(report.data_aware?.calibration_samples, 6);
    assert.deepEqual(report.tensors.map((t) => t.method).sort(), ['gptq (damp 0.01, block 128, act-order)', 'gptq (damp 0.01, block 128, act-order)']);
    assert.equal(report.validation.status, 'ok');
  });

  it('the default output is <model>.<bits>bit.onnx beside the model', async () => {
    const r = await cli(['quantize', 'mlp.onnx', '--no-validate', '-q']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(join(dir, 'mlp.8bit.onnx')));
    const report = JSON.parse(readFileSync(join(dir, 'mlp.8bit.report.json'), 'utf8'));
    assert.equal(report.validation.status, 'skipped');
  });
});

describe('what went wrong, and the exit code', () => {
  const cases: [string, string[], number, RegExp][] = [
    ['an unknown flag', ['tensor', 'w.npy', '--bitz', '4'], 2, /QUANT_ERR_VALIDATION: unknown flag --bitz/],
    ['an option value the API refuses', ['tensor', 'w.npy', '--bits', '40'], 2, /QUANT_ERR_VALIDATION: --bits: /],
    ['a model option value the API refuses', ['quantize', 'mlp.onnx', '--bits', '5'], 2, new RegExp(`QUANT_ERR_VALIDATION: --bits: must be one of ${MODEL_BITS.join(', ')}`)],
    ['a missing argument', ['quantize'], 2, /give one model file/],
    ['an unknown command', ['frobnicate'], 2, /unknown command 'frobnicate'/],
    ['a file that is not a model', ['quantize', 'w.npy'], 1, /QUANT_ERR_ONNX: /],
    ['--shape with an .npy file', ['tensor', 'w.npy', '--shape', '3'], 2, /--shape applies only to raw input/],
    ['a raw tensor whose shape does not fit', ['tensor', 'w.bin', '--shape', '3', '-o', 'bad.npz'], 1, /QUANT_ERR_TENSOR_SHAPE: tensor: shape \[3\] needs 3 float32 values/],
    ['options that do not fit the tensor', ['tensor', 'w.npy', '--granularity', 'per_channel', '--axis', '5'], 1, /QUANT_ERR_OPTION: /],
    ['a missing input file', ['quantize', 'nope.onnx'], 3, /cannot read .*nope\.onnx: no such file or directory/],
    ['an output directory that does not exist', ['tensor', 'w.npy', '-o', 'no/such/dir/x.npz'], 3, /cannot write .*x\.npz/],
    ['a calibration file that is not there', ['quantize', 'mlp.onnx', '--format', 'static', '--calibration', 'samples.npz'], 3, /cannot read .*samples\.npz/],
  ];
  for (const [what, args, code, message] of cases) {
    it(`${what}: exit ${code}`, async () => {
      const r = await cli(args);
      assert.equal(r.code, code, r.stderr);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace for a user error');
    });
  }
});

describe('quantd serve', () => {
  it('runs the service with flags as its settings, and stops on SIGTERM', async () => {
    const child = spawn(process.execPath, [MAIN, 'serve', '--port', '0', '--host', '127.0.0.1', '--workers', '1', '--log-level', 'info'], { stdio: ['ignore', 'pipe', 'pipe'] });
    after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`serve did not start: ${out}`)), 30_000);
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        const m = /"port":(\d+)[^\n]*quantd ready/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
    });
    const res = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(res.status, 200);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    process.kill(child.pid!, 'SIGTERM');
    assert.equal(await exited, 0);
  });
});

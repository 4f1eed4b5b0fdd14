import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { concatPieces, encodeSafetensors, readSafetensorsHeader, type SafetensorsOutput } from '../../src/codecs/safetensors.js';
import { quantizeCheckpoint } from '../../src/checkpoints/quantize-checkpoint.js';
import { WeightsReport, WeightsOptions } from '../../src/http/schemas/weights.js';
import { randn } from '../onnx/models.js';
import { spawnCli } from './spawn.js';

// `quantd weights`, spawned as a user runs it: one file, and a sharded checkpoint by its index.

const dir = mkdtempSync(join(tmpdir(), 'quantd-cli-weights-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const cli = (args: string[]) => spawnCli(dir, args);

const f32 = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const t = (name: string, shape: number[], seed: number): SafetensorsOutput => ({ name, dtype: 'F32', shape, data: f32(randn(shape.reduce((a, b) => a * b, 1), seed, 0.05)) });
const file = (tensors: SafetensorsOutput[]) => Buffer.from(concatPieces(encodeSafetensors(tensors, { format: 'pt' })));
const one = file([t('model.layers.0.mlp.up_proj.weight', [48, 128], 1), t('model.norm.weight', [128], 2)]);
writeFileSync(join(dir, 'model.safetensors'), one);

const ckpt = join(dir, 'ckpt');
mkdirSync(ckpt);
const shardA = file([t('model.layers.0.self_attn.q_proj.weight', [32, 128], 3), t('model.embed_tokens.weight', [10, 128], 4)]);
const shardB = file([t('model.layers.1.self_attn.o_proj.weight', [128, 128], 5)]);
writeFileSync(join(ckpt, 'model-00001-of-00002.safetensors'), shardA);
writeFileSync(join(ckpt, 'model-00002-of-00002.safetensors'), shardB);
const weightMap = {
  'model.layers.0.self_attn.q_proj.weight': 'model-00001-of-00002.safetensors',
  'model.embed_tokens.weight': 'model-00001-of-00002.safetensors',
  'model.layers.1.self_attn.o_proj.weight': 'model-00002-of-00002.safetensors',
};
writeFileSync(join(ckpt, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
writeFileSync(join(ckpt, 'config.json'), JSON.stringify({ model_type: 'llama' }));

describe('quantd weights', () => {
  it('--help lists the API options as flags', async () => {
    const r = await cli(['weights', '--help']);
    assert.equal(r.code, 0);
    for (const flag of ['--bits <value>', '--group-size', '--include', '--exclude', '--report', '--config', '-o, --output']) assert.ok(r.stdout.includes(flag), flag);
    assert.match((await cli(['--help'])).stdout, /quantd weights/);
  });

  it('one file: the bytes POST /v1/weights/quantize returns, the report beside it, a summary', async () => {
    const r = await cli(['weights', 'model.safetensors', '--bits', '4', '--group-size', '64', '--scheme', 'asymmetric']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /wrote .*model\.4bit\.safetensors/);
    assert.match(r.stdout, /4-bit asymmetric per_group \(groups of 64\)/);
    assert.match(r.stderr, /^quantd: quantizing/m);
    const written = readFileSync(join(dir, 'model.4bit.safetensors'));
    const expected = concatPieces(quantizeCheckpoint(new Uint8Array(one), WeightsOptions.parse({ bits: '4', group_size: '64', scheme: 'asymmetric' }), { maxElements: 1e8, maxDims: 32 }).file);
    assert.deepEqual(new Uint8Array(written), expected);
    const report = WeightsReport.parse(JSON.parse(readFileSync(join(dir, 'model.4bit.report.json'), 'utf8')));
    assert.equal(report.summary.tensors_quantized, 1);
  });

  it('an index: the shards, the rewritten index and config.json with quantization_config in the output directory', async () => {
    const r = await cli(['weights', 'ckpt/model.safetensors.index.json', '-o', 'out', '--bits', '8', '--granularity', 'per_channel']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /2 files/);
    const out = join(dir, 'out');
    const index = JSON.parse(readFileSync(join(out, 'model.safetensors.index.json'), 'utf8'));
    assert.equal(index.weight_map['model.layers.1.self_attn.o_proj.weight_packed'], 'model-00002-of-00002.safetensors');
    assert.equal(index.weight_map['model.embed_tokens.weight'], 'model-00001-of-00002.safetensors');
    const h = readSafetensorsHeader(new Uint8Array(readFileSync(join(out, 'model-00002-of-00002.safetensors'))));
    assert.deepEqual(h.tensors.map((x) => x.name), ['model.layers.1.self_attn.o_proj.weight_packed', 'model.layers.1.self_attn.o_proj.weight_scale', 'model.layers.1.self_attn.o_proj.weight_shape']);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    assert.equal(config.model_type, 'llama');
    assert.equal(config.quantization_config.config_groups.group_0.weights.strategy, 'channel');
    assert.ok(existsSync(join(dir, 'out.report.json')));
  });

  const failures: [string, string[], number, RegExp][] = [
    ['an index without -o', ['weights', 'ckpt/model.safetensors.index.json'], 2, /QUANT_ERR_VALIDATION: an index needs -o <directory>/],
    ['-o the checkpoint directory', ['weights', 'ckpt/model.safetensors.index.json', '-o', 'ckpt'], 2, /the checkpoint's own directory/],
    ['a bad option', ['weights', 'model.safetensors', '--bits', '3'], 2, /QUANT_ERR_VALIDATION: --bits: /],
    ['a file that does not exist', ['weights', 'ckpt/missing.safetensors'], 3, /cannot read .*missing\.safetensors/],
    ['a truncated file', ['weights', 'bad.safetensors'], 1, /QUANT_ERR_SAFETENSORS: safetensors: shard 'bad\.safetensors': .* run past the end of the data/],
  ];
  writeFileSync(join(dir, 'bad.safetensors'), one.subarray(0, one.length - 100));
  for (const [what, args, code, message] of failures) {
    it(`${what}: exit ${code}`, async () => {
      const r = await cli(args);
      assert.equal(r.code, code, r.stderr);
      assert.match(r.stderr, message);
    });
  }
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import request from 'supertest';
import { decodeNpz } from '../../src/codecs/npz.js';
import { concatPieces, encodeSafetensors, readSafetensorsHeader, type SafetensorsOutput } from '../../src/codecs/safetensors.js';
import { WeightsReport } from '../../src/http/schemas/weights.js';
import { randn } from '../onnx/models.js';
import { binaryParser, testApp } from './helpers.js';

// Sharded safetensors checkpoints as jobs: POST /v1/weights/jobs, progress per tensor, the
// result as a zip of the index, the shards and config.json, bad checkpoints refused at upload.

const f32 = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const file = (tensors: SafetensorsOutput[]) => Buffer.from(concatPieces(encodeSafetensors(tensors, { format: 'pt' })));
const t = (name: string, shape: number[], seed: number): SafetensorsOutput => ({ name, dtype: 'F32', shape, data: f32(randn(shape.reduce((a, b) => a * b, 1), seed, 0.05)) });

const shard1 = file([t('model.layers.0.self_attn.q_proj.weight', [32, 128], 1), t('model.layers.0.self_attn.k_proj.weight', [16, 128], 2), t('model.layers.0.input_layernorm.weight', [128], 3)]);
const shard2 = file([t('model.embed_tokens.weight', [10, 128], 4), t('model.layers.1.mlp.down_proj.weight', [128, 64], 5)]);
const S1 = 'model-00001-of-00002.safetensors';
const S2 = 'model-00002-of-00002.safetensors';
const weightMap = (h1: Buffer, h2: Buffer) =>
  Object.fromEntries([...readSafetensorsHeader(h1).tensors.map((x) => [x.name, S1]), ...readSafetensorsHeader(h2).tensors.map((x) => [x.name, S2])]);
const index = (map: Record<string, string> = weightMap(shard1, shard2)) => Buffer.from(JSON.stringify({ metadata: { total_size: 1234 }, weight_map: map }));
const config = Buffer.from(JSON.stringify({ architectures: ['LlamaForCausalLM'], hidden_size: 128 }));

const app = await testApp({ workers: 1 });
const server = () => request(app.server);

type Job = { id: string; kind: string; status: string; progress: { fraction: number; phase: string; tensors_done: number; tensors_total: number }; error?: { code: string; message: string } };

async function settle(id: string): Promise<Job[]> {
  const seen: Job[] = [];
  for (let i = 0; i < 1000; i++) {
    const job = (await server().get(`/v1/jobs/${id}`).expect(200)).body as Job;
    seen.push(job);
    if (job.status === 'succeeded' || job.status === 'failed') return seen;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`job ${id} did not finish`);
}

function sharded(parts: { shards?: [string, Buffer][]; index?: Buffer | undefined; config?: Buffer | undefined; fields?: Record<string, string> } = {}) {
  let req = server().post('/v1/weights/jobs');
  for (const [k, v] of Object.entries(parts.fields ?? { bits: '4', group_size: '64' })) req = req.field(k, v);
  for (const [name, bytes] of parts.shards ?? [[S1, shard1], [S2, shard2]]) req = req.attach('shard', bytes, name);
  if (parts.index !== undefined) req = req.attach('index', parts.index, 'model.safetensors.index.json');
  if (parts.config !== undefined) req = req.attach('config', parts.config, 'config.json');
  return req;
}

describe('POST /v1/weights/jobs', () => {
  it('quantizes a sharded checkpoint: the zip holds the rewritten index, the shards under their names and config.json', async () => {
    const created = await sharded({ index: index(), config }).expect(202);
    const seen = await settle(created.body.id);
    const last = seen.at(-1)!;
    assert.equal(last.status, 'succeeded', JSON.stringify(last.error));
    assert.equal(last.kind, 'weights');
    assert.deepEqual([last.progress.tensors_done, last.progress.tensors_total, last.progress.fraction], [3, 3, 1]);
    const fractions = seen.map((j) => j.progress.fraction);
    assert.deepEqual(fractions, [...fractions].sort((a, b) => a - b));

    const res = await server().get(`/v1/jobs/${created.body.id}/result`).buffer(true).parse(binaryParser).expect(200);
    assert.match(String(res.headers['content-disposition']), /filename="model\.4bit\.zip"/);
    const entries = new Map(decodeNpz(new Uint8Array(res.body as Buffer)).map((e) => [e.name, Buffer.from(e.data)]));
    assert.deepEqual([...entries.keys()], ['model.safetensors.index.json', S1, S2, 'config.json']);

    const outIndex = JSON.parse(entries.get('model.safetensors.index.json')!.toString());
    const h1 = readSafetensorsHeader(entries.get(S1)!);
    const h2 = readSafetensorsHeader(entries.get(S2)!);
    assert.deepEqual(outIndex.weight_map, Object.fromEntries(Object.entries(weightMap(entries.get(S1)!, entries.get(S2)!)).sort(([a], [b]) => (a < b ? -1 : 1))));
    assert.ok(outIndex.weight_map['model.layers.1.mlp.down_proj.weight_packed'] === S2 && !('model.layers.1.mlp.down_proj.weight' in outIndex.weight_map));
    assert.equal(outIndex.metadata.total_size, [h1, h2].reduce((s, h) => s + h.tensors.reduce((n, x) => n + x.end - x.begin, 0), 0));
    const cfg = JSON.parse(entries.get('config.json')!.toString());
    assert.equal(cfg.hidden_size, 128);
    assert.equal(cfg.quantization_config.format, 'pack-quantized');
    assert.deepEqual(cfg.quantization_config.config_groups.group_0.targets, ['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.k_proj', 'model.layers.1.mlp.down_proj']);
    assert.deepEqual(JSON.parse(h2.metadata!.quantization_config!), cfg.quantization_config, 'every shard carries the whole config');

    // Each shard's tensors are what the synchronous endpoint writes for that shard alone.
    for (const [name, input] of [[S1, shard1], [S2, shard2]] as const) {
      const sync = await server().post('/v1/weights/quantize?bits=4&group_size=64').set('content-type', 'application/x-safetensors').send(input).buffer(true).parse(binaryParser).expect(200);
      const a = new Uint8Array(sync.body as Buffer);
      const b = entries.get(name)!;
      const ha = readSafetensorsHeader(a);
      const hb = readSafetensorsHeader(b);
      assert.deepEqual(hb.tensors.map((x) => x.name), ha.tensors.map((x) => x.name));
      ha.tensors.forEach((x, i) => assert.deepEqual(Buffer.from(b.subarray(hb.tensors[i]!.begin, hb.tensors[i]!.end)), Buffer.from(a.subarray(x.begin, x.end)), x.name));
    }

    const report = WeightsReport.parse((await server().get(`/v1/jobs/${created.body.id}/report`).expect(200)).body);
    assert.equal(report.summary.files, 2);
    assert.equal(report.tensors.length, 3);
    assert.equal(report.tensors.find((r) => r.module === 'model.layers.1.mlp.down_proj')!.file, S2);
    assert.deepEqual(report.skipped, [{ name: 'model.embed_tokens.weight', reason: "excluded by '*embed*'", file: S2 }]);
  });

  it('one file as the body: the result is the file the synchronous endpoint returns', async () => {
    const created = await server().post('/v1/weights/jobs?bits=8&granularity=per_channel').set('content-type', 'application/x-safetensors').send(shard1).expect(202);
    const last = (await settle(created.body.id)).at(-1)!;
    assert.equal(last.status, 'succeeded', JSON.stringify(last.error));
    const [job, sync] = await Promise.all([
      server().get(`/v1/jobs/${created.body.id}/result`).buffer(true).parse(binaryParser).expect(200),
      server().post('/v1/weights/quantize?bits=8&granularity=per_channel').set('content-type', 'application/x-safetensors').send(shard1).buffer(true).parse(binaryParser).expect(200),
    ]);
    assert.match(String(job.headers['content-disposition']), /filename="model\.8bit\.safetensors"/);
    assert.deepEqual(job.body, sync.body);
  });

  it('streams SSE progress per tensor; DELETE removes the finished job', async () => {
    const created = await sharded({ index: index() }).expect(202);
    const events = await server().get(`/v1/jobs/${created.body.id}/events`).buffer(true).parse((res, done) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => done(null, text));
    });
    const text = events.body as string;
    assert.match(text, /event: end/);
    const done = [...text.matchAll(/"tensors_done":(\d+)/g)].map((m) => Number(m[1]));
    assert.equal(Math.max(...done), 3);
    await server().delete(`/v1/jobs/${created.body.id}`).expect(204);
    await server().get(`/v1/jobs/${created.body.id}`).expect(404);
  });

  const refusals: [string, () => request.Test, RegExp][] = [
    ['an index naming a shard that was not uploaded', () => sharded({ index: index({ ...weightMap(shard1, shard2), 'extra.weight': 'model-00003-of-00003.safetensors' }) }), /weight_map puts tensor 'extra\.weight' in shard 'model-00003-of-00003\.safetensors', which was not uploaded/],
    ['a tensor missing from the map', () => sharded({ index: index(Object.fromEntries(Object.entries(weightMap(shard1, shard2)).filter(([k]) => k !== 'model.embed_tokens.weight')) as Record<string, string>) }), /shard 'model-00002-of-00002\.safetensors' holds tensor 'model\.embed_tokens\.weight', which weight_map does not list/],
    ['a tensor in the wrong shard', () => sharded({ index: index({ ...weightMap(shard1, shard2), 'model.embed_tokens.weight': S1 }) }), /holds tensor 'model\.embed_tokens\.weight', which weight_map puts in 'model-00001-of-00002\.safetensors'/],
    ['a tensor in two shards', () => sharded({ shards: [[S1, shard1], [S2, file([t('model.layers.0.self_attn.q_proj.weight', [32, 128], 1)])]], index: index() }), /tensor 'model\.layers\.0\.self_attn\.q_proj\.weight' is in two shards/],
    ['a shard with a bad header', () => sharded({ shards: [[S1, shard1], [S2, Buffer.concat([shard2, Buffer.alloc(4)])]], index: index() }), /shard 'model-00002-of-00002\.safetensors': 4 bytes after the last tensor/],
    ['a shard name that is not a .safetensors file name', () => sharded({ shards: [['shard 1.bin', shard1]] }), /shard name "shard 1\.bin" must be a plain file name ending in \.safetensors/],
    ['two shards without an index', () => sharded(), /2 shards need their index/],
    ['an index that is not JSON', () => sharded({ index: Buffer.from('{"weight_map": ') }), /safetensors index: not valid UTF-8 JSON/],
    ['a shard name in the index that is a path', () => sharded({ index: index({ ...weightMap(shard1, shard2), 'x.weight': '/etc/x.safetensors' }) }), /weight_map\['x\.weight'\]: shard name "\/etc\/x\.safetensors" must be a plain file name/],
  ];
  for (const [what, send, message] of refusals) {
    it(`refuses ${what} at upload with a 400 naming it`, async () => {
      const res = await send().expect(400);
      assert.match(res.body.code, /QUANT_ERR_(SAFETENSORS|VALIDATION)/);
      assert.match(res.body.message, message);
    });
  }

  it('bad options and a config.json that is not an object are 400s', async () => {
    const bits = await sharded({ index: index(), fields: { bits: '3' } }).expect(400);
    assert.match(bits.body.message, /multipart\/bits/);
    const cfg = await sharded({ index: index(), config: Buffer.from('[1]') }).expect(400);
    assert.equal(cfg.body.code, 'QUANT_ERR_BAD_JSON');
    // Nothing was kept of the refused uploads.
    const jobs = await app.jobs.store.list();
    assert.ok(jobs.every((j) => j.status !== 'queued'));
  });
});

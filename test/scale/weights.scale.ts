import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeNpz } from '../../src/codecs/npz.js';
import { concatPieces, encodeSafetensors, readSafetensorsHeader, type SafetensorsOutput } from '../../src/codecs/safetensors.js';
import { randn } from '../onnx/models.js';
import { events, result, settle } from './client.js';
import { topology } from './topology.js';

// A sharded safetensors checkpoint as a job on the shared store: uploaded to an API replica
// (shards and index into S3), run by a worker replica (downloaded into its scratch), the zip
// served by the API replica from S3.

const t = await topology();
await t.replica('w1');
const api = await t.replica('api', { ROLE: 'api' });

const f32 = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const tensor = (name: string, shape: number[], seed: number): SafetensorsOutput => ({ name, dtype: 'F32', shape, data: f32(randn(shape.reduce((a, b) => a * b, 1), seed, 0.05)) });
const file = (ts: SafetensorsOutput[]) => new Blob([concatPieces(encodeSafetensors(ts, { format: 'pt' }))]);
const S1 = 'model-00001-of-00002.safetensors';
const S2 = 'model-00002-of-00002.safetensors';

describe('weights jobs on the shared store', () => {
  it('runs a sharded checkpoint on another replica and serves the zip from S3', async () => {
    const form = new FormData();
    form.append('bits', '4');
    form.append('group_size', '64');
    form.append('index', new Blob([JSON.stringify({ metadata: {}, weight_map: { 'a.q_proj.weight': S1, 'b.down_proj.weight': S2 } })]), 'model.safetensors.index.json');
    form.append('shard', file([tensor('a.q_proj.weight', [32, 128], 1)]), S1);
    form.append('shard', file([tensor('b.down_proj.weight', [16, 64], 2)]), S2);
    const res = await fetch(`${api.base}/v1/weights/jobs`, { method: 'POST', body: form });
    const created = (await res.json()) as { id: string };
    assert.equal(res.status, 202, JSON.stringify(created));
    const seen = await events(api.base, created.id);
    assert.equal(seen.at(-1)!.event, 'end');
    const job = await settle(api.base, created.id);
    assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
    const entries = new Map(decodeNpz(new Uint8Array(await result(api.base, created.id))).map((e) => [e.name, e.data]));
    assert.deepEqual([...entries.keys()], ['model.safetensors.index.json', S1, S2]);
    assert.deepEqual(readSafetensorsHeader(entries.get(S2)!).tensors.map((x) => x.name), ['b.down_proj.weight_packed', 'b.down_proj.weight_scale', 'b.down_proj.weight_shape']);
  });
});

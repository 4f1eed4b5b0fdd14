import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { quantizeCheckpointFiles } from '../../src/checkpoints/checkpoint-files.js';
import { checkIndex, parseIndex } from '../../src/checkpoints/index-file.js';
import type { CheckpointOptions } from '../../src/checkpoints/layout.js';
import { quantizeCheckpoint } from '../../src/checkpoints/quantize-checkpoint.js';
import { concatPieces, encodeSafetensors, type SafetensorsOutput } from '../../src/codecs/safetensors.js';
import { cancel, cancelFlag, checkpoint } from '../../src/pool/cancel.js';
import { randn } from '../onnx/models.js';

// The streaming writer: the same bytes as the in-memory quantizer, cancellation between
// tensors, refusals before anything is written, and the index rules one by one.

const dir = mkdtempSync(join(tmpdir(), 'quantd-ckpt-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const f32 = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const t = (name: string, shape: number[], seed: number): SafetensorsOutput => ({ name, dtype: 'F32', shape, data: f32(randn(shape.reduce((a, b) => a * b, 1), seed, 0.05)) });
const file = (ts: SafetensorsOutput[]) => concatPieces(encodeSafetensors(ts, { format: 'pt' }));
const o: CheckpointOptions = { bits: 4, scheme: 'asymmetric', granularity: 'per_group', group_size: 32, calibration: 'minmax', percentile: 99.99, include: ['*'], exclude: ['*embed*'] };
const limits = { maxElements: 1e7, maxDims: 32 };

const many = file([...Array.from({ length: 6 }, (_, i) => t(`layers.${i}.proj.weight`, [16, 64], i + 1)), t('embed.weight', [8, 64], 9), t('norm.weight', [64], 10)]);
writeFileSync(join(dir, 'many.safetensors'), many);

describe('quantizeCheckpointFiles', () => {
  it('writes, tensor by tensor, the bytes quantizeCheckpoint returns in memory', () => {
    const out = join(dir, 'out1');
    mkdirSync(out);
    const seen: number[] = [];
    const r = quantizeCheckpointFiles({ shards: [{ name: 'many.4bit.safetensors', path: join(dir, 'many.safetensors') }] }, out, o, limits, (p) => seen.push(p.tensorsDone));
    assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6]);
    assert.deepEqual(new Uint8Array(readFileSync(join(out, 'many.4bit.safetensors'))), concatPieces(quantizeCheckpoint(many, o, limits).file));
    assert.equal(r.files.length, 1);
    assert.equal(r.report.summary.tensors_quantized, 6);
  });

  it('stops between tensors when cancelled: no tensor after the flag is raised', () => {
    const out = join(dir, 'out2');
    mkdirSync(out);
    const flag = cancelFlag();
    let last = -1;
    assert.throws(
      () =>
        quantizeCheckpointFiles({ shards: [{ name: 'x.safetensors', path: join(dir, 'many.safetensors') }] }, out, o, limits, (p) => {
          checkpoint(flag);
          last = p.tensorsDone;
          if (p.tensorsDone === 2) cancel(flag);
        }),
      (err: Error & { code?: string }) => err.code === 'QUANT_ERR_ABORTED',
    );
    assert.equal(last, 2);
  });

  it('refuses a weight over MAX_ELEMENTS and a bad shard before writing anything', () => {
    const out = join(dir, 'out3');
    mkdirSync(out);
    assert.throws(() => quantizeCheckpointFiles({ shards: [{ name: 'x.safetensors', path: join(dir, 'many.safetensors') }] }, out, o, { maxElements: 512, maxDims: 32 }), /QUANT_ERR_TOO_MANY_ELEMENTS|over the limit|elements/);
    writeFileSync(join(dir, 'short.safetensors'), many.subarray(0, many.length - 1));
    assert.throws(() => quantizeCheckpointFiles({ shards: [{ name: 'x.safetensors', path: join(dir, 'short.safetensors'), label: 'short.safetensors' }] }, out, o, limits), /shard 'short\.safetensors': .*run past the end of the data/);
    assert.deepEqual(readdirSync(out), []);
    assert.ok(!existsSync(join(out, 'x.safetensors')));
  });
});

describe('the index, untrusted', () => {
  const idx = (v: unknown) => parseIndex(new TextEncoder().encode(JSON.stringify(v)));
  it('parses weight_map and refuses what is not one', () => {
    assert.equal(idx({ weight_map: { a: 'm-1.safetensors' } }).weightMap.get('a'), 'm-1.safetensors');
    assert.throws(() => idx([]), /not a JSON object/);
    assert.throws(() => idx({ weight_map: [] }), /weight_map must be an object/);
    assert.throws(() => idx({ weight_map: {} }), /weight_map is empty/);
    assert.throws(() => idx({ weight_map: { a: 3 } }), /weight_map\['a'\] must be a shard file name/);
    assert.throws(() => idx({ weight_map: { a: '../m.safetensors' } }), /must be a plain file name/);
    assert.throws(() => idx({ weight_map: { a: '.hidden.safetensors' } }), /must be a plain file name/);
    assert.throws(() => idx({ metadata: 'x', weight_map: { a: 'm.safetensors' } }), /metadata must be an object/);
  });
  it('must describe the shards exactly', () => {
    const index = idx({ weight_map: { a: 's1.safetensors', b: 's2.safetensors' } });
    checkIndex(index, new Map([['s1.safetensors', ['a']], ['s2.safetensors', ['b']]]));
    assert.throws(() => checkIndex(index, new Map([['s1.safetensors', ['a']]])), /puts tensor 'b' in shard 's2\.safetensors', which was not uploaded/);
    assert.throws(() => checkIndex(index, new Map([['s1.safetensors', ['a']], ['s2.safetensors', []]])), /puts tensor 'b' in shard 's2\.safetensors', which does not hold it/);
    assert.throws(() => checkIndex(index, new Map([['s1.safetensors', ['a', 'c']], ['s2.safetensors', ['b']]])), /holds tensor 'c', which weight_map does not list/);
    assert.throws(() => checkIndex(index, new Map([['s1.safetensors', ['a', 'b']], ['s2.safetensors', ['b']]])), /holds tensor 'b', which weight_map puts in 's2\.safetensors'/);
    assert.throws(() => checkIndex(index, new Map([['s1.safetensors', ['a']], ['s2.safetensors', ['b']], ['s3.safetensors', []]])), /shard 's3\.safetensors' was uploaded but weight_map names no tensor in it/);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import request from 'supertest';
import { packColumns, packRows } from '../../src/checkpoints/pack-quantized.js';
import { concatPieces, encodeSafetensors, readSafetensorsHeader } from '../../src/codecs/safetensors.js';
import { randn } from '../onnx/models.js';
import { binaryParser, testApp } from './helpers.js';

// safetensors in and out, and the compressed-tensors pack-quantized layout.

const f32 = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const W = randn(64 * 256, 3, 0.1);
const file = Buffer.from(
  concatPieces(
    encodeSafetensors(
      [
        { name: 'layers.0.proj.weight', dtype: 'F32', shape: [64, 256], data: f32(W) },
        { name: 'layers.0.norm.weight', dtype: 'F32', shape: [256], data: f32(new Float32Array(256).fill(1)) },
        { name: 'embed_tokens.weight', dtype: 'F32', shape: [8, 256], data: f32(randn(8 * 256, 4)) },
      ],
      { format: 'pt' },
    ),
  ),
);

/** A file from a hand-written header and data. */
function handmade(header: unknown, data: Uint8Array): Buffer {
  const h = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeUInt32LE(h.length, 0);
  return Buffer.concat([len, h, data]);
}

describe('pack-quantized packing', () => {
  it("matches compressed-tensors' pack_to_int32 (its docstring: 8-bit [1, 2] -> 33409)", () => {
    // Signed 1, 2 + 128 → 129, 130, padded with zeros to four bytes.
    assert.deepEqual([...packRows([129, 130], 1, 2, 8)], [33409]);
    // 4-bit signed -8..7 → unsigned 0..15, the first in the lowest nibble.
    assert.deepEqual([...packRows([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15], 1, 16, 4)], [0x76543210, 0xfedcba98 | 0]);
    // packed_dim=0: down the columns, padded at the bottom.
    assert.deepEqual([...packColumns([1, 2, 3, 4, 5, 6], 3, 2, 4)], [1 | (3 << 4) | (5 << 8), 2 | (4 << 4) | (6 << 8)]);
  });
});

const app = await testApp({ workers: 1 });

describe('safetensors headers are untrusted', () => {
  const post = (body: Buffer, path = '/v1/weights/quantize') => request(app.server).post(path).set('content-type', 'application/x-safetensors').send(body);
  const four = new Uint8Array(16);
  const cases: [string, Buffer, RegExp][] = [
    ['too short', Buffer.alloc(4), /too short for the 8-byte header length/],
    ['a header length past the limit', Buffer.from([0, 0, 0, 0, 0, 0, 1, 0]), /header length \d+ is over the limit of 100000000 bytes/],
    ['a header length past the file', (() => { const b = Buffer.from(file); b.writeUInt32LE(10_000_000, 0); return b; })(), /runs past the end of the file/],
    ['a header that is not JSON', handmade('x', four).fill(0x41, 8, 11), /not valid JSON|does not start with a JSON object/],
    ['an unknown dtype', handmade({ w: { dtype: 'F7', shape: [4], data_offsets: [0, 16] } }, four), /tensor 'w': unknown dtype "F7"/],
    ['a shape that disagrees with its bytes', handmade({ w: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 16] } }, four), /tensor 'w': F32 of shape \[2, 3\] takes 24 bytes, but data_offsets \[0, 16\] hold 16/],
    ['a tensor past the data', handmade({ w: { dtype: 'F32', shape: [8], data_offsets: [0, 32] } }, four), /tensor 'w': data_offsets \[0, 32\] run past the end of the data \(16 bytes\)/],
    ['overlapping tensors', handmade({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 12] }, b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, four), /tensor 'b' overlaps tensor 'a'/],
    ['a hole', handmade({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, four), /tensor 'b' starts at byte 8 of the data, leaving a hole after tensor 'a'/],
    ['bytes no tensor owns', handmade({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, four), /8 bytes after the last tensor \('a'\) belong to no tensor/],
    ['negative offsets', handmade({ a: { dtype: 'F32', shape: [4], data_offsets: [-4, 12] } }, four), /tensor 'a': data_offsets must be \[begin, end\]/],
  ];
  for (const [what, body, message] of cases) {
    it(`${what}: 400 QUANT_ERR_SAFETENSORS`, async () => {
      const res = await post(body).expect(400);
      assert.equal(res.body.code, 'QUANT_ERR_SAFETENSORS');
      assert.match(res.body.message, message);
    });
  }
  it('the tensor API refuses the same file, and still serves', async () => {
    const res = await post(cases[7]![1], '/v1/quantize?tensor=a').expect(400);
    assert.equal(res.body.code, 'QUANT_ERR_SAFETENSORS');
    await request(app.server).get('/healthz').expect(200);
  });
});

describe('POST /v1/weights/quantize', () => {
  for (const scheme of ['symmetric', 'asymmetric'] as const) {
    it(`${scheme}: the pack-quantized layout, untouched tensors as they were, the config in __metadata__, the report`, async () => {
      const res = await request(app.server)
        .post(`/v1/weights/quantize?bits=4&group_size=64&scheme=${scheme}`)
        .set('content-type', 'application/x-safetensors')
        .send(file)
        .buffer(true)
        .parse(binaryParser)
        .expect(200);
      const out = new Uint8Array(res.body as Buffer);
      const h = readSafetensorsHeader(out);
      const byName = new Map(h.tensors.map((t) => [t.name, t]));
      const get = (n: string) => out.subarray(byName.get(n)!.begin, byName.get(n)!.end);
      assert.deepEqual(byName.get('layers.0.proj.weight_packed')!.shape, [64, 32]);
      assert.equal(byName.get('layers.0.proj.weight_packed')!.dtype, 'I32');
      assert.deepEqual(byName.get('layers.0.proj.weight_scale')!.shape, [64, 4]);
      assert.deepEqual([...new BigInt64Array(get('layers.0.proj.weight_shape').slice().buffer)], [64n, 256n]);
      assert.equal(byName.has('layers.0.proj.weight_zero_point'), scheme === 'asymmetric');
      if (scheme === 'asymmetric') assert.deepEqual(byName.get('layers.0.proj.weight_zero_point')!.shape, [8, 4]);
      assert.equal(byName.has('layers.0.proj.weight'), false);
      assert.deepEqual(get('embed_tokens.weight'), f32(randn(8 * 256, 4)), 'excluded by default, copied byte for byte');
      const config = JSON.parse(h.metadata!.quantization_config!);
      assert.equal(config.quant_method, 'compressed-tensors');
      assert.equal(config.format, 'pack-quantized');
      assert.deepEqual(config.config_groups.group_0.targets, ['layers.0.proj']);
      assert.equal(config.config_groups.group_0.weights.symmetric, scheme === 'symmetric');
      assert.equal(config.config_groups.group_0.weights.group_size, 64);

      // Dequantize as compressed-tensors does: unpack, minus 2^(bits-1), (q - zp) * scale.
      const packed = new Int32Array(get('layers.0.proj.weight_packed').slice().buffer);
      const scale = new Float32Array(get('layers.0.proj.weight_scale').slice().buffer);
      const zpPacked = scheme === 'asymmetric' ? new Int32Array(get('layers.0.proj.weight_zero_point').slice().buffer) : undefined;
      let sumSq = 0;
      let sumX2 = 0;
      for (let r = 0; r < 64; r++) {
        for (let c = 0; c < 256; c++) {
          const q = ((packed[r * 32 + (c >> 3)]! >>> ((c & 7) * 4)) & 15) - 8;
          const g = c >> 6;
          const zp = zpPacked ? ((zpPacked[(r >> 3) * 4 + g]! >>> ((r & 7) * 4)) & 15) - 8 : 0;
          const e = (q - zp) * scale[r * 4 + g]! - W[r * 256 + c]!;
          sumSq += e * e;
          sumX2 += W[r * 256 + c]! ** 2;
        }
      }
      const report = JSON.parse(String(res.headers['x-quantization-summary']));
      assert.equal(report.tensors_quantized, 1);
      const snr = 10 * Math.log10(sumX2 / 16384 / (sumSq / 16384 + 1e-10));
      assert.ok(Math.abs(snr - report.worst_tensor.snr_db) < 1e-3, `${snr} vs ${report.worst_tensor.snr_db}`);
      assert.ok(snr > 15);
    });
  }

  it('Accept: application/json gives the report: rows, skipped with reasons, the config', async () => {
    const res = await request(app.server).post('/v1/weights/quantize?exclude=').set('content-type', 'application/x-safetensors').set('accept', 'application/json').send(file).expect(200);
    assert.deepEqual(res.body.tensors.map((t: { name: string }) => t.name).sort(), ['embed_tokens.weight', 'layers.0.proj.weight']);
    assert.deepEqual(res.body.skipped, []);
    assert.equal(res.body.summary.format, 'pack-quantized');
    assert.equal(typeof res.body.file.data, 'string');
  });

  it('bad options are 400s naming them', async () => {
    for (const [q, field] of [['bits=2', 'bits'], ['granularity=per_tensor', 'granularity']]) {
      const res = await request(app.server).post(`/v1/weights/quantize?${q}`).set('content-type', 'application/x-safetensors').send(file).expect(400);
      assert.match(res.body.message, new RegExp(field));
    }
  });

  it('the tensor API reads one tensor of a safetensors file with ?tensor=', async () => {
    const res = await request(app.server).post('/v1/quantize?tensor=layers.0.proj.weight&bits=4').set('content-type', 'application/x-safetensors').send(file).expect(200);
    assert.deepEqual(res.body.shape, [64, 256]);
    const missing = await request(app.server).post('/v1/quantize?tensor=nope').set('content-type', 'application/x-safetensors').send(file).expect(400);
    assert.match(missing.body.message, /no tensor 'nope' in the file/);
    const unnamed = await request(app.server).post('/v1/quantize').set('content-type', 'application/x-safetensors').send(file).expect(400);
    assert.match(unnamed.body.message, /holds 3 tensors; name one with \?tensor=/);
  });
});

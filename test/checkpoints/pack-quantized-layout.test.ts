import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import { concatPieces, readSafetensorsHeader } from '../../src/codecs/safetensors.js';
import { dequantizeWith } from '../../src/core/quantize.js';
import { decodeRaw } from '../../src/core/tensor.js';
import { FLOAT_DTYPES, type CheckpointOptions } from '../../src/checkpoints/layout.js';
import { quantizeCheckpoint } from '../../src/checkpoints/quantize-checkpoint.js';
import { fitTensor } from '../../src/checkpoints/quantize-tensor.js';

// The pack-quantized layout held against an independent reader: test/fixtures/safetensors/
// pack_quantized.py (numpy, written from compressed-tensors' sources) read the committed
// outputs below, checked every rule of the layout and wrote what each module dequantizes to.
// Here: quantd still writes exactly those files, and its own dequantized values are the
// reader's, value for value.
//
// Regenerate after a deliberate change: QUANTD_UPDATE_FIXTURES=1 node --test <this file>, then
// /usr/bin/python3 test/fixtures/safetensors/pack_quantized.py read.

const DIR = resolve(process.cwd(), 'test/fixtures/safetensors');
const input = new Uint8Array(readFileSync(resolve(DIR, 'tiny.safetensors')));
const expected = JSON.parse(readFileSync(resolve(DIR, 'expected.json'), 'utf8')) as {
  configs: Record<string, Record<string, { dequantized: number[]; max_error: number; mse: number }>>;
};
const limits = { maxElements: 1e6, maxDims: 8 };
const base = { calibration: 'minmax', percentile: 99.99, include: ['*'], exclude: ['*embed*', 'lm_head*'] } as const;
const CONFIGS: Record<string, CheckpointOptions> = {
  'w4-sym-g4': { ...base, include: ['*'], exclude: [...base.exclude], bits: 4, scheme: 'symmetric', granularity: 'per_group', group_size: 4 },
  'w4-asym-g4': { ...base, include: ['*'], exclude: [...base.exclude], bits: 4, scheme: 'asymmetric', granularity: 'per_group', group_size: 4 },
  'w8-sym-channel': { ...base, include: ['*'], exclude: [...base.exclude], bits: 8, scheme: 'symmetric', granularity: 'per_channel', group_size: 128 },
  'w8-asym-channel': { ...base, include: ['*'], exclude: [...base.exclude], bits: 8, scheme: 'asymmetric', granularity: 'per_channel', group_size: 128 },
};

describe('pack-quantized layout against the independent numpy reader', () => {
  const header = readSafetensorsHeader(input);
  for (const [name, o] of Object.entries(CONFIGS)) {
    it(`${name}: the committed output, and every dequantized value the reader computed`, () => {
      const { file, report } = quantizeCheckpoint(input, o, limits);
      const bytes = concatPieces(file);
      const path = resolve(DIR, `tiny.${name}.safetensors`);
      if (process.env.QUANTD_UPDATE_FIXTURES === '1') writeFileSync(path, bytes);
      assert.deepEqual(Buffer.from(bytes), readFileSync(path), 'the bytes the reader checked');
      const modules = expected.configs[name]!;
      assert.equal(report.tensors.length, Object.keys(modules).length);
      for (const [module, want] of Object.entries(modules)) {
        const t = header.tensors.find((x) => x.name === `${module}.weight`)!;
        const { data } = decodeRaw(input.subarray(t.begin, t.end), FLOAT_DTYPES[t.dtype]!, t.shape, limits);
        const { params, q } = fitTensor(data, t.dtype, t.shape, o);
        const ours = dequantizeWith(q, params);
        assert.equal(ours.length, want.dequantized.length);
        for (let i = 0; i < ours.length; i++) assert.equal(ours[i], Math.fround(want.dequantized[i]!), `${module}[${i}]`);
        const row = report.tensors.find((r) => r.module === module)!;
        assert.equal(row.scale_dtype, t.dtype);
        assert.ok(Math.abs(row.max_error - want.max_error) <= 1e-7 * Math.max(1, want.max_error), `${module} max_error ${row.max_error} vs ${want.max_error}`);
        assert.ok(Math.abs(row.mse - want.mse) <= 1e-9 * Math.max(1e-6, want.mse) + 1e-15, `${module} mse ${row.mse} vs ${want.mse}`);
      }
    });
  }
});

describe("the README's Python snippet", () => {
  it('is test/fixtures/safetensors/dequantize.py as committed (run on the fixtures above)', () => {
    const readme = readFileSync(resolve(process.cwd(), 'README.md'), 'utf8');
    const script = readFileSync(resolve(DIR, 'dequantize.py'), 'utf8');
    assert.ok(readme.includes('```python\n' + script + '```\n'), 'README.md must hold dequantize.py verbatim');
  });
});

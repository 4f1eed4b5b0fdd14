import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { checkIndex, mergeConfig, parseIndex } from '../../src/checkpoints/index-file.js';
import { parseSafetensorsHeader } from '../../src/codecs/safetensors.js';
import { FUZZ, okOr4xx } from './expect.js';

// Sharded checkpoints' untrusted parts: whatever the index, the shards' tensor lists, a
// header or a config.json hold, the answer is a result or one of our 4xx errors.

const names = fc.constantFrom('a.weight', 'b.weight', 'c', '', '__proto__', 'constructor', 'x'.repeat(300));
const shardNames = fc.constantFrom('s1.safetensors', 's2.safetensors', '../s.safetensors', 's3.bin', '', '.s.safetensors', 'a b.safetensors');
const jsonish = fc.oneof(fc.jsonValue(), fc.dictionary(names, fc.oneof(shardNames, fc.jsonValue())), fc.record({ weight_map: fc.oneof(fc.dictionary(names, fc.oneof(shardNames, fc.integer())), fc.jsonValue()), metadata: fc.jsonValue() }));

test('an index and the shards it is held against: a result or a 4xx, never a crash', () => {
  fc.assert(
    fc.property(jsonish, fc.array(fc.tuple(shardNames, fc.array(names, { maxLength: 4 })), { maxLength: 3 }), fc.boolean(), (index, shards, garble) => {
      let bytes = new TextEncoder().encode(JSON.stringify(index) ?? 'null');
      if (garble && bytes.length > 2) bytes = bytes.subarray(0, bytes.length - 1);
      const parsed = okOr4xx(() => parseIndex(bytes));
      if (!parsed.ok) return;
      const r = okOr4xx(() => checkIndex(parsed.value, new Map(shards)));
      if (r.ok) for (const [shard, tensors] of shards) for (const t of tensors) assert.equal(parsed.value.weightMap.get(t), shard);
    }),
    FUZZ,
  );
});

test('a safetensors header of random JSON against a random file length: a header or a 4xx', () => {
  fc.assert(
    fc.property(fc.oneof(fc.jsonValue(), fc.dictionary(names, fc.record({ dtype: fc.constantFrom('F32', 'F16', 'I64', 'X'), shape: fc.array(fc.integer({ min: -1, max: 2 ** 40 }), { maxLength: 3 }), data_offsets: fc.array(fc.integer({ min: -1, max: 64 }), { maxLength: 3 }) }))), fc.integer({ min: 0, max: 200 }), (header, extra) => {
      const json = Buffer.from(JSON.stringify(header) ?? 'null');
      const head = Buffer.alloc(8 + json.length);
      head.writeUInt32LE(json.length, 0);
      json.copy(head, 8);
      const r = okOr4xx(() => parseSafetensorsHeader(head, head.length + extra));
      if (r.ok) assert.equal(r.value.tensors.reduce((n, t) => n + t.end - t.begin, 0), extra);
    }),
    FUZZ,
  );
});

test('config.json: merged, or a 4xx', () => {
  fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      const r = okOr4xx(() => mergeConfig(new TextEncoder().encode(JSON.stringify(v) ?? 'null'), { quant_method: 'compressed-tensors' }));
      if (r.ok) assert.equal(JSON.parse(new TextDecoder().decode(r.value)).quantization_config.quant_method, 'compressed-tensors');
    }),
    FUZZ,
  );
});

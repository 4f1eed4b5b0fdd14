import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { groupValues } from '../../src/core/groups.js';
import { planParams, GRANULARITIES } from '../../src/core/quantize.js';
import { groupValuesReference } from '../../src/core/reference/quantize.js';

test('groupValues lays out every group exactly as the reference gather does', () => {
  const shape = fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 4 });
  fc.assert(
    fc.property(shape, fc.constantFrom(...GRANULARITIES), fc.integer({ min: -4, max: 3 }), fc.integer({ min: 1, max: 7 }), (dims, granularity, axisSeed, groupSize) => {
      const axis = ((axisSeed % dims.length) + dims.length) % dims.length - (axisSeed < 0 ? dims.length : 0);
      const n = dims.reduce((a, b) => a * b, 1);
      const x = Float32Array.from({ length: n }, (_, i) => i * 0.5 - 3);
      const plan = planParams(dims, granularity, axis, groupSize);
      const fast = groupValues(x, plan);
      const ref = groupValuesReference(x, plan);
      assert.deepEqual(Array.from(fast.offsets), Array.from(ref.offsets));
      assert.deepEqual(Array.from(fast.values), Array.from(ref.values));
    }),
    { seed: 42, numRuns: 500 },
  );
});

test('channels along the leading axis and groups along the last axis are views, not copies', () => {
  const x = new Float32Array(24);
  assert.equal(groupValues(x, planParams([4, 6], 'per_channel', 0, 1)).values, x);
  assert.equal(groupValues(x, planParams([4, 6], 'per_group', -1, 4)).values, x);
  assert.notEqual(groupValues(x, planParams([4, 6], 'per_channel', 1, 1)).values, x);
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeModel } from '../../../src/onnx/proto/decode.js';
import { findWeights } from '../../../src/onnx/weights/find-weights.js';
import { modelQuantOptions } from '../../../src/onnx/weights/options.js';
import { weightInputs } from '../../../src/onnx/weights/weight-inputs.js';
import { loopModel, matmulNet } from '../models.js';

// Which activation a data-aware method multiplies a weight by. A weight of the main graph read
// inside a Loop body (torch.jit.script loops export so) has a body tensor as its activation,
// which the statistics runs cannot collect: it is refused with the reason (rounded to nearest,
// the row says why) instead of failing the whole request with a 400 naming the body tensor.

describe('weightInputs', () => {
  it('a main-graph weight read inside a Loop body is refused with the reason; the body weight too', () => {
    const found = findWeights(decodeModel(loopModel().bytes), modelQuantOptions({}));
    const by = Object.fromEntries(found.candidates.map((c) => [c.name, weightInputs(c, true)]));
    assert.deepEqual(Object.keys(by).sort(), ['W_body', 'W_outer']);
    assert.equal(by.W_outer, "read by 'body_mm1' inside a subgraph: its input activations are not collected (only the main graph's are)");
    assert.match(by.W_body as string, /^a weight in .*body.*: its input activations are not collected/);
  });

  it('a main-graph MatMul weight gets its activation', () => {
    const found = findWeights(decodeModel(matmulNet().bytes), modelQuantOptions({}));
    for (const c of found.candidates) {
      const r = weightInputs(c, true);
      assert.ok(typeof r !== 'string', String(r));
      assert.equal(r.inputs[0]!.layout, 'rows');
    }
  });
});

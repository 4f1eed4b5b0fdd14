import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { measureActivationErrors } from '../../../src/onnx/runtime/activation-error.js';
import type { OnnxModel } from '../../../src/onnx/proto/model.js';
import { gemmMlp, randn } from '../models.js';

// measureActivationErrors opens the float model's session, then the quantized one's: when the
// second cannot be created, the first (as big as the model) must still be released.

/** Counts the sessions onnxruntime creates and those released, while `run` runs. */
async function counting(run: () => Promise<unknown>): Promise<{ created: number; released: number; error: unknown }> {
  const create = ort.InferenceSession.create.bind(ort.InferenceSession);
  let created = 0;
  let released = 0;
  ort.InferenceSession.create = (async (...args: Parameters<typeof create>) => {
    const s = await create(...args);
    created++;
    const release = s.release.bind(s);
    s.release = async () => {
      released++;
      return release();
    };
    return s;
  }) as typeof ort.InferenceSession.create;
  try {
    await run();
    return { created, released, error: undefined };
  } catch (error) {
    return { created, released, error };
  } finally {
    ort.InferenceSession.create = create;
  }
}

const samples = { count: 2, feeds: (i: number) => ({ x: new ort.Tensor('float32', randn(256, 11 + i), [1, 256]) }) };

test('the float session is released when the quantized one cannot be created', async () => {
  const { model: float } = gemmMlp();
  // A quantized model onnxruntime refuses to load: an operator no execution provider has.
  const broken: OnnxModel = { ...float, graph: { ...float.graph, nodes: float.graph.nodes.map((n, i) => (i === 0 ? { ...n, opType: 'NoSuchOp' } : n)) } };
  const r = await counting(() => measureActivationErrors(float, broken, ['h'], samples));
  assert.ok(r.error instanceof Error && /NoSuchOp/.test(r.error.message), `onnxruntime refused the quantized model (${String(r.error)})`);
  assert.equal(r.created, 1, 'the float session was created');
  assert.equal(r.released, r.created, 'every session created was released');
});

test('both sessions (and the fused one) are released after a normal measurement', async () => {
  const { model } = gemmMlp();
  const r = await counting(() => measureActivationErrors(model, model, ['h'], samples));
  assert.equal(r.error, undefined);
  assert.equal(r.created, 3);
  assert.equal(r.released, 3);
});

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { attrs, graph, model, node, valueInfo } from '../../../src/onnx/graph/build.js';
import { encodeModelBytes } from '../../../src/onnx/proto/encode.js';
import { DataType, type OnnxTensor } from '../../../src/onnx/proto/model.js';
import { runQuantizeModelFiles } from '../../../src/pool/tasks/quantize-model-files.js';
import type { Task } from '../../../src/pool/messages.js';
import { randn } from '../../onnx/models.js';

// A job whose quantized tensors spill to a file as they are made (io/spill.ts) writes the
// same bytes as one that holds them all, as one .onnx or as .onnx + .data, leaves no spill
// file behind, and reports the same sizes.

const SIDE = 96;

/** Three MatMuls whose weights (float16 and float32) live in model.onnx.data. */
function write(dir: string): void {
  const initializers: OnnxTensor[] = [];
  const nodes = [];
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (let l = 0; l < 3; l++) {
    const values = randn(SIDE * SIDE, 7 + l);
    const fp16 = l === 1;
    const bytes = fp16 ? new Uint8Array(new Uint16Array(values.map((v) => 0x3c00 + Math.round(v * 100) % 512)).buffer) : new Uint8Array(values.buffer.slice(0));
    chunks.push(bytes);
    initializers.push({
      name: `W${l}`,
      dims: [SIDE, SIDE],
      dataType: fp16 ? DataType.float16 : DataType.float32,
      dataLocation: 1,
      externalData: [
        { key: 'location', value: 'model.onnx.data' },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(bytes.length) },
      ],
    });
    offset += bytes.length;
    const x = l === 0 ? 'x' : `h${l - 1}`;
    if (fp16) {
      nodes.push(node('Cast', [x], [`${x}_16`], { name: `c${l}`, attributes: [attrs.int('to', DataType.float16)] }));
      nodes.push(node('MatMul', [`${x}_16`, `W${l}`], [`h${l}_16`], { name: `mm${l}` }));
      nodes.push(node('Cast', [`h${l}_16`], [`h${l}`], { name: `d${l}`, attributes: [attrs.int('to', DataType.float32)] }));
    } else nodes.push(node('MatMul', [x, `W${l}`], [l === 2 ? 'y' : `h${l}`], { name: `mm${l}` }));
  }
  const data = new Uint8Array(offset);
  let at = 0;
  for (const c of chunks) {
    data.set(c, at);
    at += c.length;
  }
  writeFileSync(join(dir, 'model.onnx.data'), data);
  const g = graph({ nodes, initializers, inputs: [valueInfo('x', DataType.float32, [1, SIDE])], outputs: [valueInfo('y', DataType.float32, [1, SIDE])] });
  writeFileSync(join(dir, 'model.onnx'), encodeModelBytes(model(g, { opset: 17 })));
}

function task(dir: string, out: string, bits: 4 | 8, spillBytes: number | undefined, maxInlineBytes: number | undefined): Extract<Task, { op: 'quantizeModelFiles' }> {
  return {
    op: 'quantizeModelFiles',
    inputDir: dir,
    model: 'model.onnx',
    external: [{ name: 'model.onnx.data', file: 'model.onnx.data' }],
    outputDir: out,
    outputName: 'model.q.onnx',
    maxInlineBytes,
    spillBytes,
    options: { bits, scheme: 'symmetric', calibration: 'minmax', percentile: 99.99, format: 'auto', op_types: ['MatMul', 'Gemm', 'Conv'], exclude: [], min_elements: 1024, validate: false } as never,
    limits: { maxElements: 2 ** 31, maxDims: 8, maxMatmulMacs: 2 ** 31, maxJsonReplyBytes: 2 ** 28 },
    progressChannel: 'spill-test',
  };
}

test('a job that spills its quantized tensors writes the bytes of one that holds them', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'quantd-spill-'));
  try {
    write(dir);
    for (const bits of [4, 8] as const) {
      for (const maxInline of [undefined, 4096]) {
        const files = (spill: number | undefined) => {
          const out = join(dir, `out-${bits}-${maxInline}-${spill}`);
          mkdirSync(out);
          return { out, run: runQuantizeModelFiles(task(dir, out, bits, spill, maxInline)) };
        };
        const held = files(undefined);
        const spilled = files(0);
        const [a, b] = [await held.run, await spilled.run];
        assert.deepEqual((b.meta as { artifacts: unknown }).artifacts, (a.meta as { artifacts: unknown }).artifacts, `${bits}-bit, max inline ${maxInline}: the same artifacts`);
        const names = readdirSync(held.out).sort();
        assert.deepEqual(readdirSync(spilled.out).sort(), names, 'no spill file is left');
        assert.equal(names.length, maxInline ? 2 : 1);
        for (const n of names) assert.ok(readFileSync(join(spilled.out, n)).equals(readFileSync(join(held.out, n))), `${bits}-bit ${n}: the same bytes`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { decodeModel } from '../../../src/onnx/proto/decode.js';
import { defaultOpset } from '../../../src/onnx/proto/model.js';
import { OpsetScan } from '../../../src/onnx/proto/opset-scan.js';
import { graph, model, node, valueInfo } from '../../../src/onnx/graph/build.js';
import { encodeModelBytes } from '../../../src/onnx/proto/encode.js';
import { DataType } from '../../../src/onnx/proto/model.js';
import { gemmMlp, withExternalData } from '../models.js';

/** Streams `bytes` through a scan in chunks of `size` bytes; returns the scan and what passed. */
async function scan(bytes: Uint8Array, size: number): Promise<{ scan: OpsetScan; passed: Buffer }> {
  const s = new OpsetScan();
  const out: Buffer[] = [];
  const chunks = function* () {
    for (let i = 0; i < bytes.length; i += size) yield Buffer.from(bytes.subarray(i, i + size));
  };
  await pipeline(
    Readable.from(chunks()),
    s,
    new Writable({
      write(c: Buffer, _e, cb) {
        out.push(c);
        cb();
      },
    }),
  );
  return { scan: s, passed: Buffer.concat(out) };
}

const identity = (opset: number, extra: { domain: string; version: number }[]) =>
  encodeModelBytes(model(graph({ nodes: [node('Identity', ['x'], ['y'])], inputs: [valueInfo('x', DataType.float32, [1])], outputs: [valueInfo('y', DataType.float32, [1])] }), { opset, extraOpsets: extra }));

describe('OpsetScan', () => {
  const models: Array<[string, Uint8Array]> = [
    ['gemm mlp, opset 13', gemmMlp(13).bytes],
    ['gemm mlp, opset 21', gemmMlp(21).bytes],
    ['external data', withExternalData(gemmMlp(17), ['W1'], 'w.bin').bytes],
    ['two domains', identity(19, [{ domain: 'com.microsoft', version: 1 }])],
  ];
  for (const [name, bytes] of models) {
    it(`reads the opset imports of ${name} as decodeModel does, however the bytes are split, and passes them on unchanged`, async () => {
      const decoded = decodeModel(bytes);
      for (const size of [1, 2, 3, 7, 64, bytes.length]) {
        const { scan: s, passed } = await scan(bytes, size);
        assert.deepEqual(s.imports, decoded.opsetImports, `chunks of ${size}`);
        assert.equal(s.defaultOpset, defaultOpset(decoded));
        assert.ok(passed.equals(Buffer.from(bytes)));
      }
    });
  }

  it('knows nothing of a truncated model, a non-protobuf body, or a group wire type', async () => {
    const bytes = gemmMlp(17).bytes;
    assert.equal((await scan(bytes.subarray(0, bytes.length - 3), 5)).scan.imports, undefined);
    assert.equal((await scan(Buffer.from('not a model at all, just text'), 4)).scan.imports, undefined);
    assert.equal((await scan(Buffer.from([0x0b, 0x00]), 1)).scan.imports, undefined);
    // An opset_import entry too large to be one is not buffered.
    assert.equal((await scan(Buffer.concat([Buffer.from([0x42, 0x80, 0x80, 0x04]), Buffer.alloc(65536)]), 1000)).scan.imports, undefined);
  });

  it('reports an empty import list for an empty body (decodeModel refuses it later)', async () => {
    const { scan: s } = await scan(new Uint8Array(0), 1);
    assert.deepEqual(s.imports, []);
    assert.equal(s.defaultOpset, undefined);
  });
});

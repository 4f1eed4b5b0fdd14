import { attrs, floatTensor, graph, int64Tensor, model, node, valueInfo } from '../../src/onnx/graph/build.js';
import { encodeModelBytes } from '../../src/onnx/proto/encode.js';
import { DataType, type OnnxModel, type OnnxNode, type OnnxTensor } from '../../src/onnx/proto/model.js';

// The models the ONNX tests run, built in code: each is small enough for fast sessions and
// weight-dominated so the size figures mean something. Weights are seeded N(0, 1/fan_in).

const F = DataType.float32;

export function randn(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 1) / 4294967297;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()) * scale;
  return out;
}

function weight(name: string, dims: number[], fanIn: number, seed: number): OnnxTensor {
  return floatTensor(name, dims, randn(dims.reduce((a, b) => a * b, 1), seed, 1 / Math.sqrt(fanIn)));
}

export interface BuiltModel {
  model: OnnxModel;
  bytes: Uint8Array;
}

function built(m: OnnxModel): BuiltModel {
  return { model: m, bytes: encodeModelBytes(m) };
}

/** x[batch, 256] → Gemm(W1 [256, 512], transB=0) → Relu → Gemm(W2 [128, 512], transB=1) → y[batch, 128]. */
export function gemmMlp(opset = 17): BuiltModel {
  return built(
    model(
      graph({
        nodes: [
          node('Gemm', ['x', 'W1', 'b1'], ['h'], { name: 'fc1' }),
          node('Relu', ['h'], ['r'], { name: 'relu' }),
          node('Gemm', ['r', 'W2', 'b2'], ['y'], { name: 'fc2', attributes: [attrs.int('transB', 1)] }),
        ],
        initializers: [weight('W1', [256, 512], 256, 1), floatTensor('b1', [512], randn(512, 2, 0.1)), weight('W2', [128, 512], 512, 3), floatTensor('b2', [128], randn(128, 4, 0.1))],
        inputs: [valueInfo('x', F, ['batch', 256])],
        outputs: [valueInfo('y', F, ['batch', 128])],
        valueInfo: [valueInfo('h', F, ['batch', 512])],
      }),
      { opset },
    ),
  );
}

/** x[1, 8, 256] → MatMul(W1 [256, 256]) → Add → Relu → MatMul(W2 [256, 64]) → y; W1 also in graph.input when irVersion < 4. */
export function matmulNet(opset = 17, irVersion?: number): BuiltModel {
  const ir = irVersion ?? (opset >= 21 ? 10 : 8);
  const inputs = [valueInfo('x', F, [1, 8, 256])];
  if (ir < 4) inputs.push(valueInfo('W1', F, [256, 256]), valueInfo('W2', F, [256, 64]), valueInfo('b1', F, [256]));
  return built(
    model(
      graph({
        nodes: [
          node('MatMul', ['x', 'W1'], ['m'], { name: 'proj' }),
          node('Add', ['m', 'b1'], ['a'], { name: 'add' }),
          node('Relu', ['a'], ['r'], { name: 'relu' }),
          node('MatMul', ['r', 'W2'], ['y'], { name: 'out' }),
        ],
        initializers: [weight('W1', [256, 256], 256, 11), floatTensor('b1', [256], randn(256, 12, 0.1)), weight('W2', [256, 64], 256, 13)],
        inputs,
        outputs: [valueInfo('y', F, [1, 8, 64])],
        valueInfo: [valueInfo('W1', F, [256, 256]), valueInfo('m', F, [1, 8, 256])],
      }),
      { opset, irVersion: ir },
    ),
  );
}

/** x[1, 8, 12, 12] → Conv(W1 [32, 8, 3, 3], pad 1) + B → Relu → Conv(W2 [16, 32, 3, 3]) → y. */
export function convNet(opset = 17): BuiltModel {
  const conv = (inputs: string[], out: string, name: string): OnnxNode =>
    node('Conv', inputs, [out], { name, attributes: [attrs.ints('pads', [1, 1, 1, 1]), attrs.ints('kernel_shape', [3, 3])] });
  return built(
    model(
      graph({
        nodes: [conv(['x', 'W1', 'B1'], 'c1', 'conv1'), node('Relu', ['c1'], ['r'], { name: 'relu' }), conv(['r', 'W2'], 'y', 'conv2')],
        initializers: [weight('W1', [32, 8, 3, 3], 72, 21), floatTensor('B1', [32], randn(32, 22, 0.1)), weight('W2', [16, 32, 3, 3], 288, 23)],
        inputs: [valueInfo('x', F, [1, 8, 12, 12])],
        outputs: [valueInfo('y', F, [1, 16, 12, 12])],
      }),
      { opset },
    ),
  );
}

/** One weight W [256, 256] read by two MatMuls. */
export function sharedWeight(opset = 17): BuiltModel {
  return built(
    model(
      graph({
        nodes: [
          node('MatMul', ['x', 'W'], ['h'], { name: 'first' }),
          node('Tanh', ['h'], ['t'], { name: 'tanh' }),
          node('MatMul', ['t', 'W'], ['y'], { name: 'second' }),
        ],
        initializers: [weight('W', [256, 256], 256, 31)],
        inputs: [valueInfo('x', F, [2, 256])],
        outputs: [valueInfo('y', F, [2, 256])],
      }),
      { opset },
    ),
  );
}

/** Weights held by Constant nodes rather than initializers. */
export function constantWeights(opset = 17): BuiltModel {
  const constant = (name: string, t: OnnxTensor) => node('Constant', [], [name], { name: `${name}_const`, attributes: [attrs.tensor('value', t)] });
  return built(
    model(
      graph({
        nodes: [
          constant('W1', weight('', [128, 256], 128, 41)),
          node('MatMul', ['x', 'W1'], ['h'], { name: 'mm1' }),
          node('Relu', ['h'], ['r'], { name: 'relu' }),
          constant('W2', weight('', [256, 64], 256, 42)),
          node('MatMul', ['r', 'W2'], ['y'], { name: 'mm2' }),
        ],
        inputs: [valueInfo('x', F, [4, 128])],
        outputs: [valueInfo('y', F, [4, 64])],
      }),
      { opset },
    ),
  );
}

/** The model with the named initializers moved to one external data file at `location`. */
export function withExternalData(b: BuiltModel, names: string[], location: string): BuiltModel & { data: Uint8Array } {
  const chunks: Uint8Array[] = [];
  let offset = 0;
  const initializers = b.model.graph.initializers.map((t): OnnxTensor => {
    if (!names.includes(t.name)) return t;
    const raw = t.rawData!;
    const entry: OnnxTensor = {
      name: t.name,
      dims: t.dims,
      dataType: t.dataType,
      dataLocation: 1,
      externalData: [
        { key: 'location', value: location },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(raw.length) },
      ],
    };
    chunks.push(raw);
    offset += raw.length;
    return entry;
  });
  const m = { ...b.model, graph: { ...b.model.graph, initializers } };
  return { model: m, bytes: encodeModelBytes(m), data: Buffer.concat(chunks) };
}

/**
 * x[1, 16, height, width] → Conv(W [64, 16, 3, 3], pads 1) → h → h - GlobalAveragePool(h) → y.
 * At 1×1 (symbolic dims set to 1) h equals its own mean: y is all zero on any weights.
 */
export function meanRemovedConv(opset = 17): BuiltModel {
  return built(
    model(
      graph({
        nodes: [
          node('Conv', ['x', 'W'], ['h'], { name: 'conv', attributes: [attrs.ints('pads', [1, 1, 1, 1])] }),
          node('GlobalAveragePool', ['h'], ['m'], { name: 'gap' }),
          node('Sub', ['h', 'm'], ['y'], { name: 'center' }),
        ],
        initializers: [weight('W', [64, 16, 3, 3], 144, 21)],
        inputs: [valueInfo('x', F, [1, 16, 'height', 'width'])],
        outputs: [valueInfo('y', F, [1, 64, 'height', 'width'])],
      }),
      { opset },
    ),
  );
}

/** A streaming layer: x[1, 32, sequence] → Pad(reflect, 1 each side) → Conv(W [64, 32, 3]) → y; reflect padding needs sequence ≥ 2. */
export function reflectPadConv(opset = 17): BuiltModel {
  return built(
    model(
      graph({
        nodes: [
          node('Pad', ['x', 'pads'], ['p'], { name: 'pad', attributes: [attrs.string('mode', 'reflect')] }),
          node('Conv', ['p', 'W'], ['y'], { name: 'conv' }),
        ],
        initializers: [int64Tensor('pads', [6], [0, 0, 1, 0, 0, 1]), weight('W', [64, 32, 3], 96, 22)],
        inputs: [valueInfo('x', F, [1, 32, 'sequence'])],
        outputs: [valueInfo('y', F, [1, 64, 'sequence'])],
      }),
      { opset },
    ),
  );
}

/** ids int64[1, sequence] → Gather(E [100, 64]) → MatMul(W [64, 64]) → y: an integer input. */
export function embeddingNet(opset = 17): BuiltModel {
  return built(
    model(
      graph({
        nodes: [node('Gather', ['E', 'ids'], ['e'], { name: 'embed' }), node('MatMul', ['e', 'W'], ['y'], { name: 'proj' })],
        initializers: [weight('E', [100, 64], 1, 23), weight('W', [64, 64], 64, 24)],
        inputs: [valueInfo('ids', DataType.int64, [1, 'sequence'])],
        outputs: [valueInfo('y', F, [1, 'sequence', 64])],
      }),
      { opset },
    ),
  );
}

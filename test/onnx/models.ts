import { floatToBfloat16, floatToHalf } from '../../src/core/float16.js';
import { attrs, floatTensor, graph, int64Tensor, model, node, tensor, valueInfo } from '../../src/onnx/graph/build.js';
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

// Models for the coverage of real graphs: subgraphs, recurrent layers, embeddings,
// ConvTranspose, float16 and bfloat16 weights, and weights behind Transpose/Identity/Cast.

const subgraphAttr = (name: string, g: ReturnType<typeof graph>) => ({ name, type: 5, g });

/**
 * If(cond): both branches read the outer W_shared [64, 64]; then_branch also has its own
 * initializer W_then [64, 64]. x[2, 64] → y[2, 64].
 */
export function ifModel(opset = 17): BuiltModel {
  const thenBranch = graph({
    name: 'then',
    nodes: [node('MatMul', ['x', 'W_shared'], ['t1'], { name: 'then_mm1' }), node('MatMul', ['t1', 'W_then'], ['y_then'], { name: 'then_mm2' })],
    initializers: [weight('W_then', [64, 64], 64, 61)],
    inputs: [],
    outputs: [valueInfo('y_then', F, [2, 64])],
  });
  const elseBranch = graph({
    name: 'else',
    nodes: [node('MatMul', ['x', 'W_shared'], ['e1'], { name: 'else_mm' }), node('Relu', ['e1'], ['y_else'], { name: 'else_relu' })],
    inputs: [],
    outputs: [valueInfo('y_else', F, [2, 64])],
  });
  return built(
    model(
      graph({
        nodes: [node('If', ['cond'], ['y'], { name: 'branch', attributes: [subgraphAttr('then_branch', thenBranch), subgraphAttr('else_branch', elseBranch)] })],
        initializers: [weight('W_shared', [64, 64], 64, 62)],
        inputs: [valueInfo('x', F, [2, 64]), valueInfo('cond', DataType.bool, [])],
        outputs: [valueInfo('y', F, [2, 64])],
      }),
      { opset },
    ),
  );
}

/** Loop 3 times: v ← Tanh(MatMul(v, W_outer) + MatMul(v, W_body)), W_body an initializer of the body. v[1, 64]. */
export function loopModel(opset = 17): BuiltModel {
  const body = graph({
    name: 'body',
    nodes: [
      node('MatMul', ['v_in', 'W_outer'], ['p1'], { name: 'body_mm1' }),
      node('MatMul', ['v_in', 'W_body'], ['p2'], { name: 'body_mm2' }),
      node('Add', ['p1', 'p2'], ['s'], { name: 'body_add' }),
      node('Tanh', ['s'], ['v_out'], { name: 'body_tanh' }),
      node('Identity', ['cond_in'], ['cond_out'], { name: 'body_cond' }),
    ],
    initializers: [weight('W_body', [64, 64], 64, 71)],
    inputs: [valueInfo('iter', DataType.int64, []), valueInfo('cond_in', DataType.bool, []), valueInfo('v_in', F, [1, 64])],
    outputs: [valueInfo('cond_out', DataType.bool, []), valueInfo('v_out', F, [1, 64])],
  });
  return built(
    model(
      graph({
        nodes: [node('Loop', ['M', 'keep_going', 'v0'], ['v'], { name: 'loop', attributes: [subgraphAttr('body', body)] })],
        initializers: [
          weight('W_outer', [64, 64], 64, 72),
          { ...int64Scalar('M', 3) },
          { name: 'keep_going', dims: [], dataType: DataType.bool, rawData: Uint8Array.of(1), dataLocation: 0, externalData: [] },
        ],
        inputs: [valueInfo('v0', F, [1, 64])],
        outputs: [valueInfo('v', F, [1, 64])],
      }),
      { opset },
    ),
  );
}

function int64Scalar(name: string, v: number): OnnxTensor {
  return { name, dims: [], dataType: DataType.int64, rawData: new Uint8Array(BigInt64Array.of(BigInt(v)).buffer), dataLocation: 0, externalData: [] };
}

/** X[4, 1, 32] → LSTM(hidden 64) → Y, and → GRU(hidden 48) → Y2; W and R are weights, B stays float. */
export function recurrentModel(opset = 17): BuiltModel {
  return built(
    model(
      graph({
        nodes: [
          node('LSTM', ['X', 'W', 'R', 'B'], ['Y'], { name: 'lstm', attributes: [attrs.int('hidden_size', 64)] }),
          node('GRU', ['X', 'Wg', 'Rg', 'Bg'], ['Y2'], { name: 'gru', attributes: [attrs.int('hidden_size', 48), attrs.int('linear_before_reset', 1)] }),
        ],
        initializers: [
          weight('W', [1, 256, 32], 32, 81),
          weight('R', [1, 256, 64], 64, 82),
          floatTensor('B', [1, 512], randn(512, 83, 0.1)),
          weight('Wg', [1, 144, 32], 32, 84),
          weight('Rg', [1, 144, 48], 48, 85),
          floatTensor('Bg', [1, 288], randn(288, 86, 0.1)),
        ],
        inputs: [valueInfo('X', F, [4, 1, 32])],
        outputs: [valueInfo('Y', F, [4, 1, 1, 64]), valueInfo('Y2', F, [4, 1, 1, 48])],
      }),
      { opset },
    ),
  );
}

/** ids[1, 8] → Gather(E [512, 64]) → MatMul(Transpose(E)) → logits[1, 8, 512]: an embedding tied to the output projection. */
export function tiedEmbedding(opset = 17): BuiltModel {
  return built(
    model(
      graph({
        nodes: [
          node('Gather', ['E', 'ids'], ['h'], { name: 'embed' }),
          node('Tanh', ['h'], ['t'], { name: 'tanh' }),
          node('Transpose', ['E'], ['Et'], { name: 'tie', attributes: [attrs.ints('perm', [1, 0])] }),
          node('MatMul', ['t', 'Et'], ['logits'], { name: 'lm_head' }),
        ],
        initializers: [weight('E', [512, 64], 1, 91)],
        inputs: [valueInfo('ids', DataType.int64, [1, 8])],
        outputs: [valueInfo('logits', F, [1, 8, 512])],
      }),
      { opset },
    ),
  );
}

/** x[1, 32, 6, 6] → ConvTranspose(W [32, 8, 3, 3], group 2) → depthwise Conv(Wd [16, 1, 3, 3], group 16) → grouped Conv(Wg [32, 8, 3, 3], group 2). */
export function convTransposeNet(opset = 17): BuiltModel {
  const k = attrs.ints('kernel_shape', [3, 3]);
  const pads = attrs.ints('pads', [1, 1, 1, 1]);
  return built(
    model(
      graph({
        nodes: [
          node('ConvTranspose', ['x', 'W'], ['u'], { name: 'up', attributes: [k, attrs.int('group', 2), attrs.ints('strides', [2, 2])] }),
          node('Conv', ['u', 'Wd'], ['d'], { name: 'depthwise', attributes: [k, pads, attrs.int('group', 16)] }),
          node('Conv', ['d', 'Wg'], ['y'], { name: 'grouped', attributes: [k, pads, attrs.int('group', 2)] }),
        ],
        initializers: [weight('W', [32, 8, 3, 3], 144, 101), weight('Wd', [16, 1, 3, 3], 9, 102), weight('Wg', [32, 8, 3, 3], 72, 103)],
        inputs: [valueInfo('x', F, [1, 32, 6, 6])],
        outputs: [valueInfo('y', F, [1, 32, 13, 13])],
      }),
      { opset },
    ),
  );
}

/** float16 values of a float32 array, as raw bits. */
export function halfBits(a: Float32Array): Uint16Array {
  return Uint16Array.from(a, floatToHalf);
}

/** x[2, 128] float16 → MatMul(W [128, 256] fp16) → Relu → Gemm(W2 [64, 256] fp16, transB=1) → y float16. */
export function halfMlp(opset = 17): BuiltModel {
  const H = DataType.float16;
  return built(
    model(
      graph({
        nodes: [
          node('MatMul', ['x', 'W1'], ['h'], { name: 'fc1' }),
          node('Relu', ['h'], ['r'], { name: 'relu' }),
          node('Gemm', ['r', 'W2'], ['y'], { name: 'fc2', attributes: [attrs.int('transB', 1)] }),
        ],
        initializers: [
          tensor('W1', H, [128, 256], halfBits(randn(128 * 256, 111, 1 / Math.sqrt(128)))),
          tensor('W2', H, [64, 256], halfBits(randn(64 * 256, 112, 1 / Math.sqrt(256)))),
        ],
        inputs: [valueInfo('x', H, [2, 128])],
        outputs: [valueInfo('y', H, [2, 64])],
      }),
      { opset },
    ),
  );
}

/**
 * x[2, 128] float16 → MatMul(W1 [128, 256] fp16) → Relu → MatMul(W2 [256, 64] fp16) → y float16: MatMul
 * only (halfMlp's Gemm keeps onnxruntime from fusing DequantizeLinear → MatMul there).
 */
export function halfMatMuls(opset = 17): BuiltModel {
  const H = DataType.float16;
  return built(
    model(
      graph({
        nodes: [node('MatMul', ['x', 'W1'], ['h'], { name: 'mm1' }), node('Relu', ['h'], ['r'], { name: 'relu' }), node('MatMul', ['r', 'W2'], ['y'], { name: 'mm2' })],
        initializers: [
          tensor('W1', H, [128, 256], halfBits(randn(128 * 256, 113, 1 / Math.sqrt(128)))),
          tensor('W2', H, [256, 64], halfBits(randn(256 * 64, 114, 1 / Math.sqrt(256)))),
        ],
        inputs: [valueInfo('x', H, [2, 128])],
        outputs: [valueInfo('y', H, [2, 64])],
      }),
      { opset },
    ),
  );
}

/**
 * Weights as exporters compute them: a float16 Constant → Cast(float) → Transpose → MatMul,
 * an initializer → Identity → MatMul, a bfloat16 initializer → Cast(float) → MatMul. x[2, 128] → y[2, 64].
 */
export function computedWeights(opset = 17): BuiltModel {
  const c16 = tensor('', DataType.float16, [256, 128], halfBits(randn(256 * 128, 121, 1 / Math.sqrt(128))));
  return built(
    model(
      graph({
        nodes: [
          node('Constant', [], ['Wc'], { name: 'Wc_const', attributes: [attrs.tensor('value', c16)] }),
          node('Cast', ['Wc'], ['Wc_f'], { name: 'cast', attributes: [attrs.int('to', DataType.float32)] }),
          node('Transpose', ['Wc_f'], ['Wc_t'], { name: 'transpose', attributes: [attrs.ints('perm', [1, 0])] }),
          node('MatMul', ['x', 'Wc_t'], ['h1'], { name: 'mm1' }),
          node('Identity', ['Wi'], ['Wi_id'], { name: 'identity' }),
          node('MatMul', ['h1', 'Wi_id'], ['h2'], { name: 'mm2' }),
          node('Cast', ['Wb'], ['Wb_f'], { name: 'cast_bf16', attributes: [attrs.int('to', DataType.float32)] }),
          node('MatMul', ['h2', 'Wb_f'], ['y'], { name: 'mm3' }),
        ],
        initializers: [
          weight('Wi', [256, 128], 256, 122),
          tensor('Wb', DataType.bfloat16, [128, 64], Uint16Array.from(randn(128 * 64, 123, 1 / Math.sqrt(128)), floatToBfloat16)),
        ],
        inputs: [valueInfo('x', F, [2, 128])],
        outputs: [valueInfo('y', F, [2, 64])],
      }),
      { opset },
    ),
  );
}

/**
 * The model with every initializer also listed as a graph input, as PyTorch's
 * keep_initializers_as_inputs=True exports it (IR ≥ 4 says each is a default callers may override).
 */
export function withInitializersAsInputs(b: BuiltModel, irVersion = b.model.irVersion): BuiltModel {
  const g = b.model.graph;
  const listed = new Set(g.inputs.map((v) => v.name));
  const extra = g.initializers.filter((t) => !listed.has(t.name)).map((t) => valueInfo(t.name, t.dataType, [...t.dims]));
  return built({ ...b.model, irVersion, graph: { ...g, inputs: [...g.inputs, ...extra] } });
}

import * as ort from 'onnxruntime-node';
import { attrs, floatTensor, graph, model, node, valueInfo } from '../../../src/onnx/graph/build.js';
import { DataType, type OnnxModel, type OnnxValueInfo } from '../../../src/onnx/proto/model.js';
import { randn } from '../models.js';

// A small conv net for the calibration tests: symbolic batch, an intermediate with value_info
// ('c1'), some without ('r', 'p'), a float16 one ('h16') and an int64 input that is fed but
// not calibrated.
//   x[batch, 4, 10, 10] → Conv(W1 [8, 4, 3, 3], pad 1) + B1 → c1 → Relu → r → MaxPool 2 → p
//   p → Cast(float16) → h16 → Cast(float32) → f → Conv(W2 [6, 8, 3, 3]) → y[batch, 6, 3, 3]
//   y + ReduceSum over the int64 `shift` cast to float → z  (keeps `shift` a real input)

const F = DataType.float32;
export const CALIB_TENSORS = ['x', 'c1', 'r', 'p', 'h16', 'y'];

export function calibNet(extraOutputs: OnnxValueInfo[] = []): OnnxModel {
  const pads = attrs.ints('pads', [1, 1, 1, 1]);
  return model(
    graph({
      nodes: [
        node('Conv', ['x', 'W1', 'B1'], ['c1'], { name: 'conv1', attributes: [pads, attrs.ints('kernel_shape', [3, 3])] }),
        node('Relu', ['c1'], ['r'], { name: 'relu' }),
        node('MaxPool', ['r'], ['p'], { name: 'pool', attributes: [attrs.ints('kernel_shape', [2, 2]), attrs.ints('strides', [2, 2])] }),
        node('Cast', ['p'], ['h16'], { name: 'to16', attributes: [attrs.int('to', DataType.float16)] }),
        node('Cast', ['h16'], ['f'], { name: 'to32', attributes: [attrs.int('to', DataType.float32)] }),
        node('Conv', ['f', 'W2'], ['y'], { name: 'conv2', attributes: [attrs.ints('kernel_shape', [3, 3])] }),
        node('Cast', ['shift'], ['sf'], { name: 'shiftf', attributes: [attrs.int('to', DataType.float32)] }),
        node('Add', ['y', 'sf'], ['z'], { name: 'add' }),
      ],
      initializers: [floatTensor('W1', [8, 4, 3, 3], randn(288, 71, 0.4)), floatTensor('B1', [8], randn(8, 72, 0.2)), floatTensor('W2', [6, 8, 3, 3], randn(432, 73, 0.2))],
      inputs: [valueInfo('x', F, ['batch', 4, 10, 10]), valueInfo('shift', DataType.int64, [1])],
      outputs: [valueInfo('z', F, ['batch', 6, 3, 3]), ...extraOutputs],
      valueInfo: [valueInfo('c1', F, ['batch', 8, 10, 10])],
    }),
    { opset: 17 },
  );
}

/** The same net with every calibrated intermediate declared a typed graph output, as a reference. */
export function calibNetWithOutputs(): OnnxModel {
  return calibNet([
    valueInfo('c1', F, undefined),
    valueInfo('r', F, undefined),
    valueInfo('p', F, undefined),
    valueInfo('h16', DataType.float16, undefined),
    valueInfo('y', F, undefined),
  ]);
}

export function halfToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

export function valuesOf(t: ort.Tensor): number[] {
  if (t.type === 'float16') return Array.from(t.data as Uint16Array, halfToNumber);
  return Array.from(t.data as Float32Array);
}

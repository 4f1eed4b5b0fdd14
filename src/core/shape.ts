import { Errors } from '../errors.js';

export type Shape = readonly number[];

/** Element count of a shape; validates every dim before anything is allocated. */
export function numel(shape: Shape, field = 'shape'): number {
  let n = 1;
  shape.forEach((d, i) => {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new Errors.TensorShape(`${field}[${i}] must be a non-negative integer, got: ${d}`);
    }
    n *= d;
  });
  return n;
}

export function checkElementLimits(shape: Shape, limits: { maxElements: number; maxDims: number }, field = 'shape'): number {
  if (shape.length > limits.maxDims) {
    throw new Errors.TensorShape(`${field} has ${shape.length} dimensions; the limit is MAX_DIMS=${limits.maxDims}`);
  }
  const n = numel(shape, field);
  if (n > limits.maxElements) {
    throw new Errors.TooManyElements(
      `${field} [${shape.join(', ')}] declares ${n} elements; the limit is MAX_ELEMENTS=${limits.maxElements}`,
    );
  }
  if (n === 0) throw new Errors.TensorShape(`${field} [${shape.join(', ')}] has no elements; the tensor must not be empty`);
  return n;
}

/** Normalises a possibly negative axis into [0, rank). */
export function normalizeAxis(axis: number, rank: number, field = 'axis'): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(axis) || a < 0 || a >= rank) {
    throw new Errors.Option(`${field} ${axis} is out of range for a tensor of rank ${rank} (allowed ${-rank}..${rank - 1})`);
  }
  return a;
}

/** A shape seen as [outer, len, inner] around one axis: element (o, a, i) sits at (o*len + a)*inner + i. */
export interface AxisLayout {
  outer: number;
  len: number;
  inner: number;
}

export function axisLayout(shape: Shape, axis: number): AxisLayout {
  let outer = 1;
  let inner = 1;
  for (let i = 0; i < axis; i++) outer *= shape[i]!;
  for (let i = axis + 1; i < shape.length; i++) inner *= shape[i]!;
  return { outer, len: shape[axis]!, inner };
}

/** Row-major strides (in elements). */
export function stridesOf(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** Nests a flat array into arrays following shape (a 0-d shape gives the scalar). */
export function nest(flat: ArrayLike<number>, shape: Shape): unknown {
  if (shape.length === 0) return flat[0];
  let pos = 0;
  const build = (dim: number): unknown[] => {
    const out = new Array<unknown>(shape[dim]!);
    for (let i = 0; i < shape[dim]!; i++) out[i] = dim === shape.length - 1 ? flat[pos++] : build(dim + 1);
    return out;
  };
  return build(0);
}

import { Errors } from '../errors.js';

// Structured cloning recurses once per nesting level: a few thousand levels of JSON arrays
// overflow the stack while the task is posted, which would surface as a 500. Tensors have
// at most MAX_DIMS dimensions, so anything this deep is bad input.
export const MAX_MESSAGE_DEPTH = 64;

function childrenOf(v: unknown): readonly unknown[] | undefined {
  if (typeof v !== 'object' || v === null || ArrayBuffer.isView(v) || v instanceof ArrayBuffer) return undefined;
  return Array.isArray(v) ? v : Object.values(v);
}

/**
 * Throws a 400 if a message nests arrays or objects more than maxDepth levels deep. Walks
 * depth first with an explicit stack of at most maxDepth frames, so neither recursion nor
 * the width of a tensor can make it run out of stack or memory.
 */
export function assertShallow(value: unknown, maxDepth = MAX_MESSAGE_DEPTH): void {
  const root = childrenOf(value);
  if (!root) return;
  const frames: Array<readonly unknown[]> = [root];
  const positions: number[] = [0];
  while (frames.length > 0) {
    const top = frames.length - 1;
    const children = frames[top]!;
    const i = positions[top]!++;
    if (i >= children.length) {
      frames.pop();
      positions.pop();
      continue;
    }
    const child = children[i];
    // Numbers are nearly every element of a JSON tensor: skip them without a call.
    if (typeof child !== 'object' || child === null) continue;
    const next = childrenOf(child);
    if (!next) continue;
    if (frames.length >= maxDepth) {
      throw new Errors.TensorData(`the request nests arrays or objects more than ${maxDepth} levels deep; a tensor has at most MAX_DIMS dimensions`);
    }
    frames.push(next);
    positions.push(0);
  }
}

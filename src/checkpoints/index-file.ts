import { Errors } from '../errors.js';

// model.safetensors.index.json (what transformers' save_pretrained writes beside the shards):
// {"metadata": {"total_size": <bytes of tensor data>, ...}, "weight_map": {tensor: shard file}}.
// Untrusted: its size and counts are bounded, shard names are plain file names (they become
// output paths), and it must describe the uploaded shards exactly.

export const INDEX_FILENAME = 'model.safetensors.index.json';
/** Bounds on a sharded checkpoint: an index of a few hundred thousand tensors fits. */
export const MAX_INDEX_BYTES = 64 * 2 ** 20;
export const MAX_SHARDS = 1024;
export const MAX_CHECKPOINT_TENSORS = 1_000_000;
/** config.json beside the shards: a few kilobytes in practice. */
export const MAX_CONFIG_BYTES = 4 * 2 ** 20;

const SHARD_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,250}\.safetensors$/;

const fail = (message: string): never => {
  throw new Errors.Safetensors(`safetensors index: ${message}`);
};

/** A shard's file name as it may appear in an index and on disk; undefined when acceptable. */
export function shardNameProblem(name: string): string | undefined {
  if (!SHARD_NAME.test(name)) return `shard name ${JSON.stringify(name.slice(0, 300))} must be a plain file name ending in .safetensors (letters, digits, '.', '_', '-'; no directories)`;
  return undefined;
}

export interface CheckpointIndex {
  metadata: Record<string, unknown>;
  /** tensor → shard file name. */
  weightMap: Map<string, string>;
}

export function parseIndex(bytes: Uint8Array): CheckpointIndex {
  if (bytes.length > MAX_INDEX_BYTES) fail(`the index is ${bytes.length} bytes, over the limit of ${MAX_INDEX_BYTES}`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    return fail(`not valid UTF-8 JSON: ${(err as Error).message}`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) return fail('not a JSON object');
  const { metadata = {}, weight_map: map } = json as { metadata?: unknown; weight_map?: unknown };
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) fail('metadata must be an object');
  if (map === null || typeof map !== 'object' || Array.isArray(map)) return fail('weight_map must be an object of tensor name → shard file name');
  const weightMap = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(map as Record<string, unknown>)) {
    if (weightMap.size >= MAX_CHECKPOINT_TENSORS) fail(`weight_map has more than ${MAX_CHECKPOINT_TENSORS} tensors`);
    if (typeof shard !== 'string') fail(`weight_map['${tensor}'] must be a shard file name, got ${JSON.stringify(shard)}`);
    const problem = shardNameProblem(shard as string);
    if (problem) fail(`weight_map['${tensor}']: ${problem}`);
    weightMap.set(tensor, shard as string);
  }
  if (weightMap.size === 0) fail('weight_map is empty');
  const shards = new Set(weightMap.values());
  if (shards.size > MAX_SHARDS) fail(`weight_map names ${shards.size} shards, over the limit of ${MAX_SHARDS}`);
  return { metadata: metadata as Record<string, unknown>, weightMap };
}

/**
 * The index against the shards as uploaded (`shards`: file name → its tensor names): every
 * weight_map entry names an uploaded shard that holds the tensor, every tensor of every shard
 * is in the map under that shard (so none is in two shards), every shard is named by the map.
 */
export function checkIndex(index: CheckpointIndex, shards: ReadonlyMap<string, readonly string[]>): void {
  const uploaded = [...shards.keys()];
  const seenIn = new Map<string, string>();
  for (const [shard, tensors] of shards) {
    for (const t of tensors) {
      const other = seenIn.get(t);
      if (other !== undefined) fail(`tensor '${t}' is in two shards, '${other}' and '${shard}'`);
      seenIn.set(t, shard);
      const mapped = index.weightMap.get(t);
      if (mapped === undefined) fail(`shard '${shard}' holds tensor '${t}', which weight_map does not list`);
      if (mapped !== shard) fail(`shard '${shard}' holds tensor '${t}', which weight_map puts in '${mapped}'`);
    }
  }
  for (const [t, shard] of index.weightMap) {
    if (!shards.has(shard)) fail(`weight_map puts tensor '${t}' in shard '${shard}', which was not uploaded (uploaded: ${uploaded.slice(0, 20).join(', ') || 'none'})`);
    if (!seenIn.has(t)) fail(`weight_map puts tensor '${t}' in shard '${shard}', which does not hold it`);
  }
  const named = new Set(index.weightMap.values());
  for (const shard of uploaded) if (!named.has(shard)) fail(`shard '${shard}' was uploaded but weight_map names no tensor in it`);
}

/** The rewritten index: the new tensor names → shard, total_size the bytes of tensor data (as transformers counts it). */
export function encodeIndex(input: CheckpointIndex | undefined, weightMap: Map<string, string>, totalSize: number): Uint8Array {
  const sorted = Object.fromEntries([...weightMap].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return new TextEncoder().encode(`${JSON.stringify({ metadata: { ...(input?.metadata ?? {}), total_size: totalSize }, weight_map: sorted }, null, 2)}\n`);
}

/** config.json with quantization_config set (the place vLLM and transformers read it from). */
export function mergeConfig(bytes: Uint8Array, config: Record<string, unknown>): Uint8Array {
  if (bytes.length > MAX_CONFIG_BYTES) throw new Errors.Validation(`config.json is ${bytes.length} bytes, over the limit of ${MAX_CONFIG_BYTES}`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    throw new Errors.BadJson(`config.json is not valid UTF-8 JSON: ${(err as Error).message}`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Errors.BadJson('config.json is not a JSON object');
  return new TextEncoder().encode(`${JSON.stringify({ ...(json as object), quantization_config: config }, null, 2)}\n`);
}

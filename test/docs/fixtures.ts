import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeNpy } from '../../src/codecs/npy.js';
import { encodeNpz } from '../../src/codecs/npz.js';
import { concatPieces, encodeSafetensors, type SafetensorsOutput } from '../../src/codecs/safetensors.js';
import { floatToHalf } from '../../src/core/float16.js';
import { floatTensor, graph, model, node, valueInfo } from '../../src/onnx/graph/build.js';
import { decodeModel } from '../../src/onnx/proto/decode.js';
import { encodeModelBytes } from '../../src/onnx/proto/encode.js';
import { DataType, type OnnxModel } from '../../src/onnx/proto/model.js';
import { randn, withExternalData } from '../onnx/models.js';

// The files the README's examples name, and where the suite gets them: this table is the
// one place that says so. Everything is written into the examples' work directory before
// the first block runs; a block that needs another file under a name used elsewhere (every
// model example says `model.onnx`) lists it in its `files` in examples.ts, put in place just
// before it runs and replaced by the default afterwards.
//
// | README name | what it is here |
// |---|---|
// | model.onnx | `readmeLm()` below: ids int64 [1, sequence] → Gather(embed_tokens) → MatMul layers.0.fc1 → Relu → MatMul fc2 → + → MatMul lm_head, the names the exclude examples use |
// | model.onnx (dims example) | test/fixtures/models/detector.onnx: image [1, 3, height, width], constant outputs at 1×1 |
// | model.onnx + model.onnx.data (external data example) | readmeLm() with its three MatMul weights in model.onnx.data |
// | resnet18.onnx | test/fixtures/models/static/resnet-mini.opset13.onnx (resnet18's structure, 8-32 channels) with its input set to [1, 3, 224, 224]: all convolutions and a global pool, so it runs at the README's image size |
// | samples.npz | input float32 [8, 1, 3, 224, 224], N(0, 1) (the PIL example later overwrites it with images) |
// | tokens.npz | ids int64 [16, 1, 64]: seeded token ids below the LM's vocabulary of 256, for model.onnx |
// | images/*.jpg, images/*.png | 3 + 3 seeded 256×256 RGB images, written by Debian's python3 with PIL |
// | w.bin | float16 [256, 512], N(0, 1), raw little-endian (`quantd tensor w.bin --shape 256,512 --dtype float16`) |
// | w.npy, layer.npz, x.f32, q.json | made by the README's own blocks |
// | model.safetensors, original.npy | model.layers.0.mlp.down_proj.weight F32 [256, 512] (original.npy is the same array), embed_tokens and lm_head [100, 512], norm [512] |
// | model-0000{1,2}-of-00002.safetensors, model.safetensors.index.json, config.json (also under ckpt/) | a two-shard checkpoint: q_proj and embed_tokens, then o_proj, [256, 256] and [100, 256] |
// | npx quantd | this checkout, installed by `npm install --offline <checkout>` (node_modules/quantd a link to it, node_modules/.bin/quantd to its bin, which npm makes executable: tsc writes it 0644, so a link made by hand fails in a fresh clone with `quantd: Permission denied`); npx then finds it offline |

const F = DataType.float32;
export const REPO = new URL('../../../', import.meta.url).pathname;
export const FIXTURES = join(REPO, 'test', 'fixtures');

const f32 = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const gaussian = (shape: number[], seed: number, scale: number) => randn(shape.reduce((a, b) => a * b, 1), seed, scale);

function weight(name: string, dims: number[], seed: number) {
  return floatTensor(name, dims, gaussian(dims, seed, 1 / Math.sqrt(dims[0]!)));
}

/** A language-model-shaped graph whose names are the README's (`fc2`, `layers.0.*`, `lm_head`, input `ids`). */
export function readmeLm(): OnnxModel {
  return model(
    graph({
      nodes: [
        node('Gather', ['embed_tokens', 'ids'], ['e'], { name: 'embed' }),
        node('MatMul', ['e', 'layers.0.fc1.weight'], ['h'], { name: 'layers.0.fc1' }),
        node('Relu', ['h'], ['r'], { name: 'layers.0.act' }),
        node('MatMul', ['r', 'layers.0.fc2.weight'], ['f'], { name: 'fc2' }),
        node('Add', ['e', 'f'], ['s'], { name: 'residual' }),
        node('MatMul', ['s', 'lm_head.weight'], ['logits'], { name: 'lm_head' }),
      ],
      initializers: [weight('embed_tokens', [256, 64], 11), weight('layers.0.fc1.weight', [64, 256], 12), weight('layers.0.fc2.weight', [256, 64], 13), weight('lm_head.weight', [64, 256], 14)],
      inputs: [valueInfo('ids', DataType.int64, [1, 'sequence'])],
      outputs: [valueInfo('logits', F, [1, 'sequence', 256])],
    }),
    { opset: 17 },
  );
}

/** n windows of `length` token ids below `vocab`, seeded (the LM's calibration samples). */
function tokenWindows(n: number, length: number, vocab: number, seed: number): BigInt64Array {
  const u = gaussian([n * length], seed, 1);
  return BigInt64Array.from(u, (v) => BigInt(Math.min(vocab - 1, Math.floor(vocab * (0.5 + 0.5 * Math.tanh(v))))));
}

/** resnet-mini with a [1, 3, 224, 224] input (its value_info, sized for 64×64, dropped). */
function resnetAt224(): Uint8Array {
  const m = decodeModel(readFileSync(join(FIXTURES, 'models', 'static', 'resnet-mini.opset13.onnx')));
  const inputs = m.graph.inputs.map((v) => (v.name === 'input' ? valueInfo('input', F, [1, 3, 224, 224]) : v));
  return encodeModelBytes({ ...m, graph: { ...m.graph, inputs, valueInfo: [] } });
}

function safetensors(tensors: [string, number[], number][]): Buffer {
  const out: SafetensorsOutput[] = tensors.map(([name, shape, seed]) => ({ name, dtype: 'F32', shape, data: f32(gaussian(shape, seed, 0.05)) }));
  return Buffer.from(concatPieces(encodeSafetensors(out, { format: 'pt' })));
}

function writeCheckpoint(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const shards: Record<string, [string, number[], number][]> = {
    'model-00001-of-00002.safetensors': [
      ['model.embed_tokens.weight', [100, 256], 31],
      ['model.layers.0.self_attn.q_proj.weight', [256, 256], 32],
    ],
    'model-00002-of-00002.safetensors': [['model.layers.1.self_attn.o_proj.weight', [256, 256], 33]],
  };
  const weightMap: Record<string, string> = {};
  for (const [file, tensors] of Object.entries(shards)) {
    writeFileSync(join(dir, file), safetensors(tensors));
    for (const [name] of tensors) weightMap[name] = file;
  }
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'llama', hidden_size: 256, num_hidden_layers: 2 }));
}

const IMAGES_PY = `
import sys, numpy as np
from PIL import Image
rng = np.random.default_rng(0)
for i in range(6):
    Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(f"{sys.argv[1]}/img{i}.{'jpg' if i < 3 else 'png'}")
`;

/** The models the examples swap in under a name, by the key examples.ts uses. */
export function modelVariants(): Record<string, Record<string, Uint8Array>> {
  const lm = readmeLm();
  const external = withExternalData({ model: lm, bytes: encodeModelBytes(lm) }, ['layers.0.fc1.weight', 'layers.0.fc2.weight', 'lm_head.weight'], 'model.onnx.data');
  return {
    default: { 'model.onnx': encodeModelBytes(lm) },
    detector: { 'model.onnx': readFileSync(join(FIXTURES, 'models', 'detector.onnx')) },
    external: { 'model.onnx': external.bytes, 'model.onnx.data': external.data },
  };
}

/** Writes every input file of the table above into `dir`; `python3` is Debian's (for PIL). */
export function prepareWorkDir(dir: string, python3: string): void {
  for (const [name, bytes] of Object.entries(modelVariants().default!)) writeFileSync(join(dir, name), bytes);
  writeFileSync(join(dir, 'resnet18.onnx'), resnetAt224());
  writeFileSync(join(dir, 'samples.npz'), encodeNpz([{ name: 'input.npy', data: encodeNpy(gaussian([8, 1, 3, 224, 224], 41, 1), '<f4', [8, 1, 3, 224, 224]) }]));
  writeFileSync(join(dir, 'tokens.npz'), encodeNpz([{ name: 'ids.npy', data: encodeNpy(tokenWindows(16, 64, 256, 43), '<i8', [16, 1, 64]) }]));
  mkdirSync(join(dir, 'images'));
  execFileSync(python3, ['-c', IMAGES_PY, join(dir, 'images')]);
  writeFileSync(join(dir, 'w.bin'), new Uint16Array(Array.from(gaussian([256, 512], 42, 1), floatToHalf)));
  const down = gaussian([256, 512], 51, 0.05);
  const checkpoint: SafetensorsOutput[] = [
    { name: 'model.embed_tokens.weight', dtype: 'F32', shape: [100, 512], data: f32(gaussian([100, 512], 52, 0.05)) },
    { name: 'model.layers.0.mlp.down_proj.weight', dtype: 'F32', shape: [256, 512], data: f32(down) },
    { name: 'model.norm.weight', dtype: 'F32', shape: [512], data: f32(gaussian([512], 53, 1)) },
    { name: 'lm_head.weight', dtype: 'F32', shape: [100, 512], data: f32(gaussian([100, 512], 54, 0.05)) },
  ];
  writeFileSync(join(dir, 'model.safetensors'), concatPieces(encodeSafetensors(checkpoint, { format: 'pt' })));
  writeFileSync(join(dir, 'original.npy'), encodeNpy(down, '<f4', [256, 512]));
  writeCheckpoint(dir);
  writeCheckpoint(join(dir, 'ckpt'));
  installCheckout(dir);
}

/**
 * `npm install <checkout>` into `dir`, by npm itself: it links the package and its bin and
 * makes the bin executable, as a user's install does. Run without the npm_* variables of
 * `npm run test:docs`, which name the checkout as npm's project (npm_config_local_prefix).
 */
function installCheckout(dir: string): void {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
  execFileSync('npm', ['install', '--offline', '--no-save', '--no-audit', '--no-fund', '--prefix', dir, REPO], { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'] });
}


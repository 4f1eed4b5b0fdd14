import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { asFloat64, CORPUS_DIR, corpusIo, loadCorpusManifest } from '../test/onnx/fixture-models.js';

// Runs every corpus model (test/fixtures/models/corpus/manifest.json) in onnxruntime-node on
// its recorded input and compares the outputs with what PyTorch / NumPy computed when the
// model was made. A check of the fixtures themselves, run by hand after regenerating them:
//   npm run build && node dist/scripts/verify-fixture-models.js [name-substring]

function compare(got: Float64Array, want: Float64Array): { cosine: number; maxAbs: number } {
  let dot = 0;
  let ng = 0;
  let nw = 0;
  let maxAbs = 0;
  for (let i = 0; i < want.length; i++) {
    dot += got[i] * want[i];
    ng += got[i] * got[i];
    nw += want[i] * want[i];
    maxAbs = Math.max(maxAbs, Math.abs(got[i] - want[i]));
  }
  return { cosine: dot / Math.sqrt(ng * nw || 1), maxAbs };
}

async function main(): Promise<number> {
  const filter = process.argv[2];
  const manifest = loadCorpusManifest();
  let bad = 0;
  for (const entry of manifest.models) {
    if (filter !== undefined && !entry.name.includes(filter)) continue;
    try {
      // a model known to crash onnxruntime with its defaults is run with the options it survives
      const safe = entry.ort?.crashes === true ? entry.ort.safe_options : {};
      const session = await ort.InferenceSession.create(join(CORPUS_DIR, entry.file), { intraOpNumThreads: 1, ...safe });
      const { feeds, expected } = corpusIo(entry);
      const out = await session.run(feeds);
      const parts: string[] = [];
      let ok = true;
      for (const [name, want] of expected) {
        const got = out[name];
        if (got === undefined) throw new Error(`no output ${name}`);
        if (got.dims.join(',') !== want.shape.join(',')) throw new Error(`output ${name}: dims ${got.dims} vs ${want.shape}`);
        const c = compare(asFloat64(got.data, got.type), asFloat64(want.data, want.dtype));
        const tol = entry.float_type === 'float16' ? 0.999 : 0.99999;
        if (!(c.cosine >= tol)) ok = false;
        parts.push(`${name}: cos ${c.cosine.toFixed(7)} max|d| ${c.maxAbs.toExponential(2)}`);
      }
      if (!ok) bad++;
      console.log(`${ok ? 'ok  ' : 'BAD '} ${entry.name.padEnd(32)} ${parts.join('; ')}`);
      await session.release();
    } catch (e) {
      bad++;
      console.log(`FAIL ${entry.name.padEnd(32)} ${(e as Error).message.split('\n')[0].slice(0, 300)}`);
    }
  }
  console.log(bad === 0 ? 'all models run and match' : `${bad} model(s) failed`);
  return bad === 0 ? 0 : 1;
}

process.exitCode = await main();

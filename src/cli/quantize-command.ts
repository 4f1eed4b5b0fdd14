import { existsSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { Errors } from '../errors.js';
import { ModelOptions } from '../http/schemas/models.js';
import { externalTensors } from '../onnx/io/external.js';
import { decodeModel } from '../onnx/proto/decode.js';
import { externalRef } from '../onnx/proto/tensor-data.js';
import { outputFilename, type ModelReport } from '../pool/tasks/model-reply.js';
import type { CliContext } from './context.js';
import { helpText, parseFlags, validateOptions, type OwnFlag } from './flags.js';
import { assertReadable, assertWritable, readInput, reportPath, writeOutput } from './files.js';
import { withProgress } from './task-progress.js';
import { modelSummary } from './summary.js';

const OWN: OwnFlag[] = [
  { name: 'output', short: 'o', value: 'out.onnx', help: 'where to write the quantized model (default: <model>.<bits>bit.onnx beside it); past 2 GiB also <out>.data' },
  { name: 'report', value: 'report.json', help: 'where to write the per-tensor report (default: <output without its extension>.report.json beside it)' },
  { name: 'inputs', value: 'inputs.npz', help: 'validation inputs: an .npz of float arrays named like the model inputs' },
  { name: 'quiet', short: 'q', boolean: true, help: 'no progress and no summary' },
];

export const QUANTIZE_USAGE = 'quantd quantize <model.onnx> [-o out.onnx] [--report report.json] [options]';

export function quantizeHelp(): string {
  return helpText(
    QUANTIZE_USAGE,
    'Quantizes the weights of an ONNX model, as POST /v1/models/quantize does, in this process. External data files are read from the model\'s directory. --calibration samples.npz (with --format static) gives the calibration samples, the API\'s `calibration` part; a method name sets the weight calibration.',
    ModelOptions.shape,
    OWN,
  );
}

/** Every external data file the model names, which must be beside it (as onnxruntime looks for them). */
function externalFiles(modelPath: string): { name: string; file: string }[] {
  const model = decodeModel(readInput(modelPath));
  const dir = dirname(modelPath);
  const out = new Map<string, string>();
  for (const t of externalTensors(model)) {
    const { location } = externalRef(t);
    if (out.has(location)) continue;
    const path = resolve(dir, location);
    if (!existsSync(path)) throw new Errors.Onnx(`initializer '${t.name}' lives in external data file '${location}', which is not in ${dir}`);
    out.set(location, relative(dir, path));
  }
  return [...out].map(([name, file]) => ({ name, file }));
}

export async function quantizeCommand(argv: string[], ctx: CliContext, print: (s: string) => void): Promise<number> {
  const parsed = parseFlags(argv, ModelOptions.shape, OWN);
  if (parsed.help) {
    print(quantizeHelp());
    return 0;
  }
  if (parsed.positional.length !== 1) throw new Errors.Validation(`give one model file (got ${parsed.positional.length}); usage: ${QUANTIZE_USAGE}`);
  // --calibration is the weight calibration method, or (an .npz) the calibration samples of
  // format=static, which the API takes as the multipart file part `calibration`.
  let calibrationFile: string | undefined;
  if (parsed.options.calibration !== undefined && /\.npz$/i.test(parsed.options.calibration)) {
    calibrationFile = resolve(parsed.options.calibration);
    delete parsed.options.calibration;
    assertReadable(calibrationFile);
  }
  const options = validateOptions(ModelOptions, parsed.options);
  const modelPath = resolve(parsed.positional[0]!);
  const inputDir = dirname(modelPath);
  const output = resolve(typeof parsed.own.output === 'string' ? parsed.own.output : join(inputDir, outputFilename(basename(modelPath), options.bits)));
  const report = reportPath(output, parsed.own.report);
  assertWritable(output);
  assertWritable(report);
  const inputs = typeof parsed.own.inputs === 'string' ? relative(inputDir, resolve(parsed.own.inputs)) : undefined;
  if (inputs !== undefined) assertReadable(resolve(inputDir, inputs));
  const external = externalFiles(modelPath);

  const quiet = parsed.own.quiet === true;
  const result = await withProgress(quiet, (progressChannel) =>
    ctx.pool().run({
      op: 'quantizeModelFiles',
      inputDir,
      model: basename(modelPath),
      external,
      inputs,
      calibration: calibrationFile === undefined ? undefined : relative(inputDir, calibrationFile),
      outputDir: dirname(output),
      outputName: basename(output),
      options,
      limits: ctx.limits,
      progressChannel,
    }),
  );
  const meta = result.meta as { report: ModelReport; artifacts: { name: string; size: number }[] };
  writeOutput(report, JSON.stringify(meta.report, null, 2) + '\n');
  if (!quiet) print(modelSummary(meta.report, meta.artifacts.map((a) => join(dirname(output), a.name)), report));
  return 0;
}

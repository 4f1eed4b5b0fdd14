import { existsSync, mkdirSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { INDEX_FILENAME, parseIndex } from '../checkpoints/index-file.js';
import type { CheckpointReport } from '../checkpoints/quantize-checkpoint.js';
import { Errors } from '../errors.js';
import { WeightsOptions } from '../http/schemas/weights.js';
import { weightsFilename } from '../pool/tasks/quantize-weights.js';
import type { CliContext } from './context.js';
import { assertReadable, assertWritable, FileError, readInput, reportPath, writeOutput } from './files.js';
import { helpText, parseFlags, validateOptions, type OwnFlag } from './flags.js';
import { withProgress } from './task-progress.js';
import { weightsSummary } from './summary.js';

const OWN: OwnFlag[] = [
  { name: 'output', short: 'o', value: 'out', help: 'a .safetensors file for one input file (default <input>.<bits>bit.safetensors beside it); a directory for an index (required), which gets the shards, the index and config.json' },
  { name: 'report', value: 'report.json', help: 'where to write the per-tensor report (default: <output without its extension>.report.json beside it)' },
  { name: 'config', value: 'config.json', help: "the model's config.json, written to the output directory with quantization_config set (default for an index: the config.json beside it, if any)" },
  { name: 'quiet', short: 'q', boolean: true, help: 'no progress and no summary' },
];

export const WEIGHTS_USAGE = 'quantd weights <model.safetensors | model.safetensors.index.json> [-o out] [--report report.json] [options]';

export function weightsHelp(): string {
  return helpText(
    WEIGHTS_USAGE,
    "Quantizes a safetensors checkpoint into compressed-tensors' pack-quantized layout, as POST /v1/weights/quantize (one file) and POST /v1/weights/jobs (shards and their index) do, in this process, tensor by tensor. Shards are read from the index's directory.",
    WeightsOptions.shape,
    OWN,
  );
}

interface Plan {
  shards: { name: string; path: string; label?: string }[];
  index: string | undefined;
  config: string | undefined;
  outputDir: string;
  /** Where the result's files go, for the summary. */
  output: string;
}

function sameFile(a: string, b: string): boolean {
  return resolve(a) === resolve(b);
}

function planSharded(indexPath: string, out: string | undefined, configFlag: string | undefined): Plan {
  if (out === undefined) throw new Errors.Validation(`an index needs -o <directory> for the quantized shards; usage: ${WEIGHTS_USAGE}`);
  const dir = dirname(indexPath);
  const outputDir = resolve(out);
  if (sameFile(outputDir, dir)) throw new Errors.Validation(`-o ${out} is the checkpoint's own directory: the shards would be overwritten while they are read; give another directory`);
  const index = parseIndex(readInput(indexPath));
  const shards = [...new Set(index.weightMap.values())].map((name) => ({ name, path: join(dir, name) }));
  for (const s of shards) assertReadable(s.path);
  const beside = join(dir, 'config.json');
  const config = configFlag ?? (existsSync(beside) ? beside : undefined);
  try {
    mkdirSync(outputDir, { recursive: true });
  } catch (err) {
    throw new FileError(`cannot create ${outputDir}: ${(err as Error).message}`);
  }
  assertWritable(join(outputDir, INDEX_FILENAME));
  return { shards, index: indexPath, config, outputDir, output: outputDir };
}

function planSingle(input: string, out: string | undefined, configFlag: string | undefined, bits: number): Plan {
  const output = resolve(out ?? join(dirname(input), weightsFilename(basename(input), bits)));
  if (sameFile(output, input)) throw new Errors.Validation(`-o ${out} is the input itself; give another file`);
  assertWritable(output);
  if (configFlag !== undefined && sameFile(join(dirname(output), 'config.json'), configFlag)) {
    throw new Errors.Validation(`--config ${configFlag} would be overwritten: the output's directory gets config.json; write the output elsewhere`);
  }
  return { shards: [{ name: basename(output), path: input, label: basename(input) }], index: undefined, config: configFlag, outputDir: dirname(output), output };
}

export async function weightsCommand(argv: string[], ctx: CliContext, print: (s: string) => void): Promise<number> {
  const parsed = parseFlags(argv, WeightsOptions.shape, OWN);
  if (parsed.help) {
    print(weightsHelp());
    return 0;
  }
  if (parsed.positional.length !== 1) throw new Errors.Validation(`give one .safetensors file or one ${INDEX_FILENAME} (got ${parsed.positional.length}); usage: ${WEIGHTS_USAGE}`);
  const options = validateOptions(WeightsOptions, parsed.options);
  const input = resolve(parsed.positional[0]!);
  assertReadable(input);
  const out = typeof parsed.own.output === 'string' ? parsed.own.output : undefined;
  const configFlag = typeof parsed.own.config === 'string' ? resolve(parsed.own.config) : undefined;
  if (configFlag !== undefined) assertReadable(configFlag);
  const plan = /\.json$/i.test(input) ? planSharded(input, out, configFlag) : planSingle(input, out, configFlag, options.bits);
  const report = reportPath(plan.output, parsed.own.report);
  assertWritable(report);

  const quiet = parsed.own.quiet === true;
  const result = await withProgress(quiet, (progressChannel) =>
    ctx.pool().run({ op: 'quantizeWeightsFiles', shards: plan.shards, index: plan.index, config: plan.config, outputDir: plan.outputDir, options, limits: ctx.limits, progressChannel }),
  );
  const meta = result.meta as { report: CheckpointReport; artifacts: { name: string; size: number }[] };
  writeOutput(report, JSON.stringify(meta.report, null, 2) + '\n');
  if (!quiet) print(weightsSummary(meta.report, plan.index ? `${plan.outputDir}/ (${meta.artifacts.map((a) => a.name).join(', ')})` : meta.artifacts.map((a) => join(plan.outputDir, a.name)).join(' + '), report));
  return 0;
}

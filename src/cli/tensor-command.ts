import { basename, dirname, extname, join, resolve } from 'node:path';
import { decodeNpz } from '../codecs/npz.js';
import { Errors } from '../errors.js';
import { BinaryQuery } from '../http/schemas/quantize.js';
import type { TensorSource } from '../pool/messages.js';
import type { CliContext } from './context.js';
import { assertWritable, readInput, reportPath, writeOutput } from './files.js';
import { helpText, parseFlags, validateOptions, type OwnFlag } from './flags.js';
import { Progress } from './progress.js';
import { tensorSummary, type TensorReportLike } from './summary.js';

const OWN: OwnFlag[] = [
  { name: 'output', short: 'o', value: 'out.npz', help: 'where to write the result: .npz (quantized, scale, zero_point, report.json) or .json (the API\'s JSON reply); default <input>.q.npz' },
  { name: 'report', value: 'report.json', help: 'where to write the report (default: <output without its extension>.report.json beside it)' },
  { name: 'quiet', short: 'q', boolean: true, help: 'no progress and no summary' },
];

export const TENSOR_USAGE = 'quantd tensor <w.npy | w.bin --shape 256,512> [-o out.npz] [--report report.json] [options]';

export function tensorHelp(): string {
  return helpText(
    TENSOR_USAGE,
    'Quantizes one tensor, as POST /v1/quantize does, in this process: a NumPy .npy file, or raw little-endian values with --shape (and --dtype).',
    BinaryQuery.shape,
    OWN,
  );
}

export async function tensorCommand(argv: string[], ctx: CliContext, print: (s: string) => void): Promise<number> {
  const parsed = parseFlags(argv, BinaryQuery.shape, OWN);
  if (parsed.help) {
    print(tensorHelp());
    return 0;
  }
  if (parsed.positional.length !== 1) throw new Errors.Validation(`give one tensor file (got ${parsed.positional.length}); usage: ${TENSOR_USAGE}`);
  const { shape, dtype, ...options } = validateOptions(BinaryQuery, parsed.options);
  const inputPath = resolve(parsed.positional[0]!);
  const output = resolve(typeof parsed.own.output === 'string' ? parsed.own.output : join(dirname(inputPath), `${basename(inputPath, extname(inputPath))}.q.npz`));
  const ext = extname(output).toLowerCase();
  if (ext !== '.npz' && ext !== '.json') throw new Errors.Validation(`-o/--output must end in .npz or .json (got ${basename(output)})`);
  const report = reportPath(output, parsed.own.report);
  assertWritable(output);
  assertWritable(report);

  const bytes = readInput(inputPath);
  let input: TensorSource;
  if (extname(inputPath).toLowerCase() === '.npy') {
    if (shape) throw new Errors.Validation(`--shape applies only to raw input; ${basename(inputPath)} is an .npy file, whose header gives its shape`);
    input = { kind: 'npy', bytes };
  }
  else if (shape) input = { kind: 'raw', bytes, dtype, shape };
  else throw new Errors.Validation(`${basename(inputPath)} is not an .npy file: give --shape (and --dtype) to read it as raw little-endian values`);

  const quiet = parsed.own.quiet === true;
  const progress = new Progress();
  if (!quiet) progress.update({ phase: 'quantizing' });
  const accept = ext === '.json' ? 'json' : 'npz';
  let result;
  try {
    result = await ctx.pool().run({ op: 'quantize', input, options, accept, limits: ctx.limits }, { transferList: [bytes.buffer as ArrayBuffer] });
  } finally {
    progress.done();
  }
  writeOutput(output, result.body);
  const text = accept === 'npz' ? Buffer.from(decodeNpz(result.body).find((e) => e.name === 'report.json')!.data).toString('utf8') : Buffer.from(result.body).toString('utf8');
  const parsedReport = JSON.parse(text) as TensorReportLike & { quantized?: { data?: string } };
  // The report beside a .json result leaves out the integers (they are in the result).
  if (accept === 'json' && parsedReport.quantized) delete parsedReport.quantized.data;
  writeOutput(report, JSON.stringify(parsedReport, null, 2) + '\n');
  if (!quiet) print(tensorSummary(parsedReport, output, report));
  return 0;
}

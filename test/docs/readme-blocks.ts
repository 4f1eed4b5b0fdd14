import { readFileSync } from 'node:fs';

// The README's runnable code blocks and their markers. Every ```sh, ```bash and ```python
// block must follow a marker line, so that a new block cannot go unchecked:
//   <!-- example: NAME -->              run by `npm run test:docs`, named NAME in its output
//   <!-- example: no-run (REASON) -->   not run, and why

export const README = new URL('../../../README.md', import.meta.url);
export const RUNNABLE_LANGS = ['sh', 'bash', 'python'] as const;
export type Lang = (typeof RUNNABLE_LANGS)[number];

export type Marker = { kind: 'run'; name: string } | { kind: 'no-run'; reason: string };

export interface Block {
  lang: Lang;
  code: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** Undefined when the line before the fence is not a marker; `problem` then says why. */
  marker: Marker | undefined;
  problem?: string;
}

const FENCE = /^```(\S*)\s*$/;
const MARKER = /^<!-- example: (.*) -->$/;
const NAME = /^[a-z0-9][a-z0-9-]*$/;
const NO_RUN = /^no-run \((.+)\)$/;

function parseMarker(line: string | undefined): { marker?: Marker; problem?: string } {
  const m = MARKER.exec(line?.trim() ?? '');
  if (!m) return { problem: 'no <!-- example: NAME --> or <!-- example: no-run (REASON) --> on the line before it' };
  const body = m[1]!.trim();
  const noRun = NO_RUN.exec(body);
  if (noRun) return { marker: { kind: 'no-run', reason: noRun[1]!.trim() } };
  if (body.startsWith('no-run')) return { problem: `'${body}': no-run needs a reason in parentheses` };
  if (!NAME.test(body)) return { problem: `'${body}' is not a name (lower case letters, digits and dashes)` };
  return { marker: { kind: 'run', name: body } };
}

/** Every ```sh / ```bash / ```python block of `markdown`, in order, with its marker. */
export function readmeBlocks(markdown: string): Block[] {
  const lines = markdown.split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i]!);
    if (!open) continue;
    let end = i + 1;
    while (end < lines.length && lines[end] !== '```') end++;
    if (end === lines.length) throw new Error(`README line ${i + 1}: a code block that never closes`);
    const lang = open[1]!;
    if ((RUNNABLE_LANGS as readonly string[]).includes(lang)) {
      const { marker, problem } = parseMarker(lines[i - 1]);
      blocks.push({ lang: lang as Lang, code: lines.slice(i + 1, end).join('\n') + '\n', line: i + 1, marker, ...(problem ? { problem } : {}) });
    }
    i = end;
  }
  return blocks;
}

/**
 * What keeps `blocks` from being checked: unmarked blocks, names used twice, names without
 * checks among `checked` (examples.ts) and checks for names the README no longer has.
 */
export function markerProblems(blocks: readonly Block[], checked: readonly string[]): string[] {
  const names = blocks.flatMap((b) => (b.marker?.kind === 'run' ? [b.marker.name] : []));
  return [
    ...blocks.filter((b) => !b.marker).map((b) => `README.md:${b.line}: ${b.problem}`),
    ...names.filter((n, i) => names.indexOf(n) !== i).map((n) => `'${n}' names two blocks`),
    ...names.filter((n) => !checked.includes(n)).map((n) => `'${n}' has no checks in test/docs/examples.ts`),
    ...checked.filter((n) => !names.includes(n)).map((n) => `test/docs/examples.ts checks '${n}', which no README block is named`),
  ];
}

export function readReadme(): string {
  return readFileSync(README, 'utf8');
}

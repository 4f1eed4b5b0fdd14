import type { z } from 'zod';
import { Errors } from '../errors.js';

// Command-line flags derived from the HTTP API's zod schemas: each snake_case option is a
// kebab-case flag (group_size → --group-size) whose text is parsed by the same schema as a
// query parameter, so a new API option is a new flag with no change here, and a flag the
// API does not know is refused by name.

export type Shape = Record<string, z.ZodType>;

/** A flag of the command itself (not an API option): -o, --report, ... */
export interface OwnFlag {
  name: string;
  short?: string;
  value?: string;
  help: string;
  boolean?: boolean;
}

export interface Parsed {
  positional: string[];
  /** API options, snake_case, as text (lists joined by commas) for the schema to parse. */
  options: Record<string, string>;
  own: Record<string, string | boolean>;
  help: boolean;
}

export const kebab = (snake: string) => snake.replace(/_/g, '-');
const snake = (kebabName: string) => kebabName.replace(/-/g, '_');

interface Def {
  type?: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  entries?: Record<string, string>;
  values?: unknown[];
}
const defOf = (s: z.ZodType): Def => (s as unknown as { _zod: { def: Def } })._zod.def;

/** The schema under defaults, optionals and pipes, where the kind of value shows. */
function core(s: z.ZodType): z.ZodType {
  for (let i = 0; i < 8; i++) {
    const d = defOf(s);
    if ((d.type === 'default' || d.type === 'optional' || d.type === 'nullable') && d.innerType) s = d.innerType;
    else if (d.type === 'pipe' && d.in && defOf(d.in).type !== 'transform') s = d.in;
    else break;
  }
  return s;
}

/** A flag that takes no value: its schema reads 'true' and 'false' as booleans. */
export function isBooleanOption(s: z.ZodType): boolean {
  const t = s.safeParse('true');
  const f = s.safeParse('false');
  return t.success && t.data === true && f.success && f.data === false;
}

/** A list option (comma-separated in the API): repeated flags are joined. */
function isListOption(s: z.ZodType): boolean {
  const r = s.safeParse('');
  return r.success && Array.isArray(r.data);
}

function choices(s: z.ZodType): string[] | undefined {
  const d = defOf(core(s));
  if (d.type === 'enum' && d.entries) return Object.values(d.entries);
  if (d.type === 'literal' && d.values) return d.values.map(String);
  return undefined;
}

/** The description on the option or on the schema it wraps (a default or optional keeps it inside). */
function descriptionOf(s: z.ZodType): string {
  for (let i = 0; i < 8; i++) {
    if (s.description) return s.description;
    const d = defOf(s);
    if (!d.innerType) break;
    s = d.innerType;
  }
  return '';
}

function defaultOf(s: z.ZodType): string | undefined {
  const r = s.safeParse(undefined);
  if (!r.success || r.data === undefined) return undefined;
  return Array.isArray(r.data) ? r.data.join(',') || '(none)' : String(r.data);
}

/** Parses argv against the API options in `shape` and the command's own flags. */
export function parseFlags(argv: string[], shape: Shape, own: OwnFlag[]): Parsed {
  const out: Parsed = { positional: [], options: {}, own: {}, help: false };
  const lists: Record<string, string[]> = {};
  const ownByName = new Map<string, OwnFlag>();
  for (const f of own) {
    ownByName.set(`--${f.name}`, f);
    if (f.short) ownByName.set(`-${f.short}`, f);
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') {
      out.help = true;
      continue;
    }
    if (arg === '--') {
      out.positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      out.positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const inline = eq > 0 ? arg.slice(eq + 1) : undefined;
    const takeValue = (name: string): string => {
      if (inline !== undefined) return inline;
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('--') && next.length > 2)) throw new Errors.Validation(`${name} needs a value`);
      i++;
      return next;
    };
    const ownFlag = ownByName.get(flag);
    if (ownFlag) {
      out.own[ownFlag.name] = ownFlag.boolean ? inline === undefined || inline === 'true' || inline === '1' : takeValue(flag);
      continue;
    }
    const negated = flag.startsWith('--no-');
    const key = snake(flag.slice(negated ? 5 : 2));
    const schema = flag.startsWith('--') ? shape[key] : undefined;
    if (!schema) throw new Errors.Validation(`unknown flag ${flag}; see --help for the flags this command takes`);
    if (isBooleanOption(schema)) {
      if (negated) out.options[key] = 'false';
      else if (inline !== undefined) out.options[key] = inline;
      else if (['true', 'false', '1', '0'].includes(argv[i + 1] ?? '')) out.options[key] = argv[++i]!;
      else out.options[key] = 'true';
      continue;
    }
    if (negated) throw new Errors.Validation(`unknown flag ${flag}; see --help for the flags this command takes`);
    const value = takeValue(flag);
    if (isListOption(schema)) (lists[key] ??= []).push(value);
    else out.options[key] = value;
  }
  for (const [key, values] of Object.entries(lists)) out.options[key] = values.join(',');
  return out;
}

/** Validates the options with the API's schema; a failure names the flag, as the API names the field. */
export function validateOptions<T extends z.ZodType>(schema: T, options: Record<string, string>): z.output<T> {
  const parsed = schema.safeParse(options);
  if (parsed.success) return parsed.data;
  const detail = parsed.error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? `--${kebab(String(i.path[0]))}${i.path.length > 1 ? '/' + i.path.slice(1).join('/') : ''}` : 'options'}: ${i.message}`)
    .join('; ');
  throw new Errors.Validation(detail);
}

/** Help lines for the API options (from the schema's descriptions) and the command's own flags. */
export function helpText(usage: string, about: string, shape: Shape, own: OwnFlag[], skip: string[] = []): string {
  const rows: [string, string][] = [];
  for (const f of own) rows.push([`${f.short ? `-${f.short}, ` : ''}--${f.name}${f.value ? ` <${f.value}>` : ''}`, f.help]);
  rows.push(['-h, --help', 'this help']);
  const api: [string, string][] = [];
  for (const [key, schema] of Object.entries(shape)) {
    if (skip.includes(key)) continue;
    const bool = isBooleanOption(schema);
    const values = choices(schema);
    const def = defaultOf(schema);
    const list = isListOption(schema);
    const left = bool ? `--${kebab(key)}, --no-${kebab(key)}` : `--${kebab(key)} <${values ? values.join('|') : list ? 'a,b,...' : 'value'}>`;
    const desc = [descriptionOf(schema), list ? '(comma-separated, or repeat the flag)' : '', def !== undefined ? `(default ${def})` : ''].filter((s) => s !== '').join(' ');
    api.push([left, desc]);
  }
  const width = Math.min(44, Math.max(...[...rows, ...api].map(([l]) => l.length)) + 2);
  const fmt = ([l, r]: [string, string]) => `  ${l.padEnd(width)}${l.length >= width ? `\n  ${' '.repeat(width)}` : ''}${r}`;
  return [`usage: ${usage}`, '', about, '', 'flags:', ...rows.map(fmt), '', 'options (the API\'s, kebab-case):', ...api.map(fmt), ''].join('\n');
}

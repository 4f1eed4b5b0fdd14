import { CONFIG_VARIABLES } from '../config.js';
import { Errors } from '../errors.js';
import { kebab } from './flags.js';

export const SERVE_USAGE = 'quantd serve [--port 8080] [--host 0.0.0.0] [--workers N] [...]';

const flagOf = (variable: string) => `--${kebab(variable.toLowerCase())}`;

export function serveHelp(): string {
  return [
    `usage: ${SERVE_USAGE}`,
    '',
    'Runs the HTTP service (as `npm start`). It is configured by environment variables (README, Configuration);',
    'each can also be given as a flag, which wins over the environment:',
    '',
    ...CONFIG_VARIABLES.map((v) => `  ${flagOf(v).padEnd(28)}${v}`),
    '',
  ].join('\n');
}

/** The flags as environment variables, for the server's own configuration loader. */
export function serveEnv(argv: string[]): Record<string, string> | 'help' {
  const byFlag = new Map(CONFIG_VARIABLES.map((v) => [flagOf(v), v]));
  const env: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') return 'help';
    const eq = arg.indexOf('=');
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const variable = byFlag.get(flag);
    if (!variable) throw new Errors.Validation(`unknown flag ${arg} for serve; see quantd serve --help`);
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new Errors.Validation(`${flag} needs a value`);
    env[variable] = value;
  }
  return env;
}

import { isQuantError } from '../../src/errors.js';

/**
 * Runs `fn`; an error must be one of ours with a 4xx status (bad input, named), never a
 * TypeError, RangeError or the like, which would be a 500 over HTTP.
 */
export function okOr4xx<T>(fn: () => T): { ok: true; value: T } | { ok: false; code: string } {
  try {
    return { ok: true, value: fn() };
  } catch (err) {
    if (isQuantError(err) && err.statusCode >= 400 && err.statusCode < 500) return { ok: false, code: err.code };
    throw new Error(`not a 4xx error of ours: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`, { cause: err });
  }
}

/** Deterministic runs: a failure reproduces from the seed fast-check prints. */
export const FUZZ = { seed: 0x5eed, numRuns: 1000 } as const;

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { Errors, errorNameOf } from '../src/errors.js';

const readme = readFileSync('README.md', 'utf8');

test('every error code is documented in the README with its status', () => {
  for (const [name, Ctor] of Object.entries(Errors)) {
    const err = new Ctor('x');
    const row = readme.split('\n').find((line) => line.startsWith(`| \`${err.code}\` |`));
    assert.ok(row, `${name}: ${err.code} is missing from the README's error table`);
    assert.match(row, new RegExp(`\\| ${err.statusCode} \\|`), `${err.code} documented with the wrong status`);
    assert.equal(errorNameOf(err.code), name);
  }
});

test('every code in the README error table exists', () => {
  const documented = [...readme.matchAll(/^\| `(QUANT_ERR_[A-Z0-9_]+)` \|/gm)].map((m) => m[1]);
  const defined = Object.values(Errors).map((C) => new C('x').code);
  assert.deepEqual([...documented].sort(), [...defined].sort());
});

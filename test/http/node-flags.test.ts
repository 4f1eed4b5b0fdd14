import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { SERVER_NODE_FLAGS } from '../../src/http/node-flags.js';

// The server's V8 flags are written out in package.json and the Dockerfile (neither can
// import them): they must say the same as src/http/node-flags.ts.
const root = new URL('../../../', import.meta.url);

test('npm start passes the server V8 flags', () => {
  const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { scripts: Record<string, string> };
  assert.equal(pkg.scripts.start, `node ${SERVER_NODE_FLAGS.join(' ')} dist/src/http/server.js`);
});

test("the Dockerfile's CMD passes the server V8 flags", () => {
  const cmd = readFileSync(new URL('Dockerfile', root), 'utf8')
    .split('\n')
    .find((l) => l.startsWith('CMD '));
  assert.deepEqual(JSON.parse(cmd!.slice(4)), ['node', ...SERVER_NODE_FLAGS, 'dist/src/http/server.js']);
});

test("every server command in the README passes the server V8 flags", () => {
  const readme = readFileSync(new URL('README.md', root), 'utf8');
  const commands = readme.split('\n').filter((l) => /\bnode\b[^`]*dist\/src\/http\/server\.js/.test(l));
  assert.ok(commands.length >= 4, `found ${commands.length} commands`);
  for (const line of commands) assert.match(line, new RegExp(`node ${SERVER_NODE_FLAGS.join(' ')} dist/src/http/server\\.js`), line);
});

test('the flags are ones this Node accepts', () => {
  // node exits with "bad option" on a flag it does not know.
  const r = spawnSync(process.execPath, [...SERVER_NODE_FLAGS, '-e', '0'], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
});

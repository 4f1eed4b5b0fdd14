import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startServer, type ServerProcess } from '../http/server-process.js';
import { freePort, stopChild, until } from '../scale/servers.js';
import { EXAMPLES, type Response } from './examples.js';
import { REPO, modelVariants, prepareWorkDir } from './fixtures.js';
import { markerProblems, readReadme, readmeBlocks } from './readme-blocks.js';
import { pythonShim, runBlock } from './run-block.js';

// `npm run test:docs`: every ```sh, ```bash and ```python block of README.md, in order, run
// as written against the real server (dist/src/http/server.js on a free loopback port, the
// embedded defaults, its jobs in this run's own directory), in one work directory holding the
// files the examples name (fixtures.ts). `localhost:8080` becomes the server's address and
// `/path/to/` the work directory; nothing else in a block is changed. Each example must exit
// 0, get no HTTP answer of 400 or more, and pass its own checks (examples.ts).

const DEFAULT_TIMEOUT_MS = 120_000;

const blocks = readmeBlocks(readReadme());
const dir = mkdtempSync(join(tmpdir(), 'quantd-docs-'));
const shim = pythonShim(dir);
const python3 = join(shim, 'python3');
const variants = modelVariants();
let server: ServerProcess;
let base = '';

before(async () => {
  prepareWorkDir(dir, existsSync(python3) ? python3 : 'python3');
  server = await startServer({ JOBS_DIR: join(dir, '.jobs') }, true);
  base = `127.0.0.1:${server.port}`;
});

// DOCS_KEEP=1 keeps the work directory (each example's script, stdout and stderr, and what it wrote).
after(async () => {
  if (server) await stopChild(server.child, 'SIGTERM');
  if (process.env.DOCS_KEEP) console.log(`README examples' work directory: ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
});

/** Every answer the server logged from log line `from` on, once each request it took is answered. */
async function responsesSince(from: number): Promise<Response[]> {
  const since = () => server.lines().slice(from);
  const done = (x: Record<string, unknown>) => x.msg === 'request completed' || x.msg === 'request errored';
  const open = () => {
    const l = since();
    const answered = new Set(l.filter(done).map((x) => x.reqId));
    return l.filter((x) => x.msg === 'incoming request' && !answered.has(x.reqId));
  };
  await until('the server to answer every request of the example', async () => (open().length === 0 ? true : undefined), 10_000, 20).catch((err: Error) => {
    throw new Error(`${err.message}: ${JSON.stringify(open())}`);
  });
  const l = since();
  const urls = new Map(l.filter((x) => x.msg === 'incoming request').map((x) => [x.reqId, x.url as string]));
  return l
    .filter(done)
    .map((x) => ({ method: x.method as string, url: urls.get(x.reqId) ?? String(x.route), statusCode: x.statusCode as number }));
}

/** Puts a variant's model files in place, removing the other variants' files. */
function putModels(which: keyof typeof variants): void {
  for (const name of new Set(Object.values(variants).flatMap((v) => Object.keys(v)))) rmSync(join(dir, name), { force: true });
  for (const [name, bytes] of Object.entries(variants[which]!)) writeFileSync(join(dir, name), bytes);
}

describe('README examples', () => {
  it('marks every sh, bash and python block: a name to run it by, or no-run and why', () => {
    assert.deepEqual(markerProblems(blocks, Object.keys(EXAMPLES)), []);
  });

  for (const block of blocks) {
    if (block.marker?.kind !== 'run') continue;
    const name = block.marker.name;
    const example = EXAMPLES[name];
    if (!example) continue;
    it(`${name} (README.md:${block.line})`, async () => {
      putModels(example.models ?? 'default');
      let code = block.code.replaceAll('localhost:8080', base).replaceAll('/path/to/', `${dir}/`);
      const servePort = example.serves ? await freePort() : 0;
      if (example.serves) code = example.serves.port(code, servePort);
      const from = server.lines().length;
      const run = await runBlock(block.lang, code, {
        cwd: example.cwd === 'repo' ? REPO : dir,
        scriptDir: dir,
        name,
        args: example.args,
        env: { PATH: `${shim}:${process.env.PATH}`, HOST: '127.0.0.1', JOBS_DIR: join(dir, `.jobs-${name}`), npm_config_offline: 'true', npm_config_update_notifier: 'false' },
        timeoutMs: example.timeoutMs ?? DEFAULT_TIMEOUT_MS,
        ...(example.serves ? { until: () => example.serves!.ready(servePort) } : {}),
      });
      // Kept with the work directory under DOCS_KEEP=1, beside the block's script.
      writeFileSync(join(dir, `${name}.stdout`), run.stdout);
      writeFileSync(join(dir, `${name}.stderr`), run.stderr);
      const responses = await responsesSince(from);
      const failed = `exit ${run.code ?? run.signal}\nstdout: ${run.stdout.slice(-3000)}\nstderr: ${run.stderr.slice(-3000)}`;
      if (!example.serves) assert.equal(run.code, 0, failed);
      assert.deepEqual(responses.filter((r) => r.statusCode >= 400), [], `HTTP errors\n${failed}`);
      try {
        await example.check({ stdout: run.stdout, stderr: run.stderr, dir, responses, base: `http://${base}` });
      } catch (err) {
        (err as Error).message += `\n${failed}`;
        throw err;
      }
      putModels('default');
    });
  }
});

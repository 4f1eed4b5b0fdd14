import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EXAMPLES } from './examples.js';
import { markerProblems, readReadme, readmeBlocks } from './readme-blocks.js';

// Part of `npm test` (Node only): the README's code blocks are all marked, so that
// `npm run test:docs` runs every one not marked no-run, and the marker parser itself.

describe('README code block markers', () => {
  it('reads sh, bash and python blocks with their markers, and says what is wrong with the others', () => {
    const md = [
      '<!-- example: first-one -->',
      '```sh',
      'echo 1',
      '```',
      '```json',
      '{"not": "runnable"}',
      '```',
      '<!-- example: no-run (needs Docker) -->',
      '```bash',
      'docker compose up',
      '```',
      'text',
      '```python',
      'print(1)',
      '```',
      '<!-- example: no-run -->',
      '```sh',
      'x',
      '```',
      '<!-- example: Bad Name -->',
      '```sh',
      'y',
      '```',
    ].join('\n');
    const blocks = readmeBlocks(md);
    assert.deepEqual(
      blocks.map((b) => [b.lang, b.line, b.code, b.marker]),
      [
        ['sh', 2, 'echo 1\n', { kind: 'run', name: 'first-one' }],
        ['bash', 9, 'docker compose up\n', { kind: 'no-run', reason: 'needs Docker' }],
        ['python', 13, 'print(1)\n', undefined],
        ['sh', 17, 'x\n', undefined],
        ['sh', 21, 'y\n', undefined],
      ],
    );
    assert.match(blocks[2]!.problem!, /no <!-- example: NAME -->/);
    assert.match(blocks[3]!.problem!, /no-run needs a reason/);
    assert.match(blocks[4]!.problem!, /'Bad Name' is not a name/);
    assert.throws(() => readmeBlocks('```sh\necho\n'), /line 1: a code block that never closes/);
  });

  it('finds every README block marked, each name once and with its checks in examples.ts', () => {
    const blocks = readmeBlocks(readReadme());
    assert.ok(blocks.length >= 30, `${blocks.length} blocks`);
    assert.deepEqual(markerProblems(blocks, Object.keys(EXAMPLES)), []);
  });

  it('names what keeps blocks from being checked', () => {
    const blocks = readmeBlocks(['<!-- example: a -->', '```sh', '```', '<!-- example: a -->', '```sh', '```', '```sh', '```'].join('\n'));
    assert.deepEqual(markerProblems(blocks, ['b']), [
      "README.md:7: no <!-- example: NAME --> or <!-- example: no-run (REASON) --> on the line before it",
      "'a' names two blocks",
      "'a' has no checks in test/docs/examples.ts",
      "'a' has no checks in test/docs/examples.ts",
      "test/docs/examples.ts checks 'b', which no README block is named",
    ]);
  });
});

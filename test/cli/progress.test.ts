import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { Progress } from '../../src/cli/progress.js';

function sink(columns = 100): { out: NodeJS.WriteStream; text: () => string } {
  let text = '';
  const w = new Writable({
    write(chunk: Buffer, _e, done) {
      text += chunk.toString();
      done();
    },
  });
  return { out: Object.assign(w, { columns, isTTY: true }) as unknown as NodeJS.WriteStream, text: () => text };
}

test('on a terminal the bar is redrawn in place and ends with a newline', () => {
  const s = sink();
  const p = new Progress(s.out, true);
  p.update({ phase: 'quantizing', fraction: 0.5, detail: '3/6 tensors' });
  p.update({ phase: 'quantizing', fraction: 1, detail: '6/6 tensors' });
  p.done();
  const frames = s.text().split('\r').filter((f) => f !== '');
  assert.equal(frames.length, 2);
  assert.match(frames[0]!, /^\[#{15}\.{15}\] {2}50% quantizing 3\/6 tensors/);
  assert.match(frames[1]!, /^\[#{30}\] 100% quantizing 6\/6 tensors \d+\.\ds *\n$/);
});

test('a bar never overflows a narrow terminal', () => {
  const s = sink(40);
  const p = new Progress(s.out, true);
  p.update({ phase: 'quantizing', fraction: 0.25, detail: 'a very long detail that goes on and on' });
  assert.ok(s.text().replace('\r', '').length <= 39);
});

test('without a terminal: one plain line per phase and per tenth', () => {
  const s = sink();
  const p = new Progress(s.out, false);
  for (let i = 0; i <= 100; i++) p.update({ phase: 'quantizing', fraction: i / 100 });
  p.update({ phase: 'writing' });
  p.done();
  const lines = s.text().trimEnd().split('\n');
  assert.equal(lines.length, 12, lines.join('\n'));
  assert.match(lines[0]!, /^quantd: quantizing 0% \(\d+\.\ds\)$/);
  assert.match(lines[10]!, /^quantd: quantizing 100%/);
  assert.match(lines[11]!, /^quantd: writing \(/);
  assert.doesNotMatch(s.text(), /\r/);
});

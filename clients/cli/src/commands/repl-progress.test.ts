import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { replProgress } from './repl-progress.js';

/** Feeds `reports` (done bytes of `total`) and answers the lines the REPL would print. */
function linesFor(total: number, reports: number[]): string[] {
  const said: string[] = [];
  const listener = replProgress((text) => said.push(text), 'upload a.jpg');
  for (const done of reports) listener(done, total);
  return said;
}

describe('replProgress', () => {
  it('says the start, each quarter once, and the end, however many reports come', () => {
    const total = 1000;
    const everyByte = Array.from({ length: total + 1 }, (_, i) => i);
    assert.deepEqual(linesFor(total, everyByte), [
      'upload a.jpg: 0%',
      'upload a.jpg: 25%',
      'upload a.jpg: 50%',
      'upload a.jpg: 75%',
      'upload a.jpg: 100%',
    ]);
  });

  it('says where a resumed upload continues, and the true percent when a report skips past a quarter', () => {
    assert.deepEqual(linesFor(1000, [400, 450, 520, 990, 1000]), [
      'upload a.jpg: 40%',
      'upload a.jpg: 52%',
      'upload a.jpg: 99%',
      'upload a.jpg: 100%',
    ]);
  });

  it('says 100% once for a small file done in one report, and for an empty one', () => {
    assert.deepEqual(linesFor(116, [116, 116]), ['upload a.jpg: 100%']);
    assert.deepEqual(linesFor(0, [0]), ['upload a.jpg: 100%']);
  });

  it('never says more than 100% nor goes back', () => {
    assert.deepEqual(linesFor(100, [60, 30, 150]), ['upload a.jpg: 60%', 'upload a.jpg: 100%']);
  });
});

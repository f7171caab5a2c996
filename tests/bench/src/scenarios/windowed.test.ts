import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { windowed } from './windowed.js';

describe('windowed', () => {
  it('runs every index once, never more than the window at a time', async () => {
    const seen: number[] = [];
    let running = 0;
    let most = 0;
    await windowed(50, 4, new AbortController().signal, async (i) => {
      running++;
      most = Math.max(most, running);
      await sleep(1);
      seen.push(i);
      running--;
    });
    assert.deepEqual(
      [...seen].sort((a, b) => a - b),
      Array.from({ length: 50 }, (_, i) => i),
    );
    assert.equal(most, 4);
  });

  it('rejects with the first failure and starts nothing after it', async () => {
    const started: number[] = [];
    await assert.rejects(
      windowed(100, 2, new AbortController().signal, async (i) => {
        started.push(i);
        await sleep(1);
        if (i === 3) throw new Error('boom 3');
      }),
      /boom 3/,
    );
    assert.ok(started.length <= 6, `started ${started.length} after the failure`);
  });

  it('stops starting work once aborted', async () => {
    const controller = new AbortController();
    let count = 0;
    await assert.rejects(
      windowed(1000, 1, controller.signal, async () => {
        if (++count === 5) controller.abort(new Error('stop'));
        await sleep(0);
      }),
      /stop/,
    );
    assert.equal(count, 5);
  });
});

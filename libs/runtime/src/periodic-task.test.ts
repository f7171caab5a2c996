import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PeriodicTask } from './periodic-task.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('runs every interval without overlap, survives a failing run, and stop() waits for the run in progress', async () => {
  let runs = 0;
  let inFlight = 0;
  let overlapped = false;
  const errors: unknown[] = [];
  let release: (() => void) | undefined;
  const task = new PeriodicTask(
    async () => {
      runs++;
      overlapped ||= inFlight > 0;
      inFlight++;
      try {
        if (runs === 2) throw new Error('second run fails');
        if (runs === 4) await new Promise<void>((r) => (release = r));
        else await sleep(5);
      } finally {
        inFlight--;
      }
    },
    { intervalMs: 10, runAtStart: true, onError: (err) => errors.push(err) },
  );
  assert.equal(task.stopping, false, 'work called directly before start() runs in full');
  task.start();
  task.start();
  while (runs < 4 || !release) await sleep(5);
  let stopped = false;
  const stopping = task.stop().then(() => (stopped = true));
  assert.equal(task.stopping, true, 'a run in progress sees stopping');
  await sleep(30);
  assert.equal(stopped, false, 'stop() waits for the run in progress');
  release();
  await stopping;
  await sleep(40);
  assert.equal(runs, 4, 'nothing runs after stop()');
  assert.equal(overlapped, false);
  assert.equal(errors.length, 1, 'the failed run was reported and the next ones still ran');
});

test('without runAtStart the first run waits an interval', async () => {
  let runs = 0;
  const task = new PeriodicTask(async () => void runs++, { intervalMs: 50, onError: () => undefined });
  task.start();
  await sleep(20);
  assert.equal(runs, 0);
  await sleep(60);
  assert.equal(runs, 1);
  await task.stop();
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { waitFor } from './wait-for.js';

test('waitFor polls until the check gives a value, and resolves with it', async () => {
  let calls = 0;
  const got = await waitFor('the third call', () => (++calls < 3 ? undefined : `call ${calls}`), 2_000, 5);
  assert.equal(got, 'call 3');
  let ready = false;
  setTimeout(() => (ready = true), 30);
  assert.equal(await waitFor('ready', async () => ready), true);
});

test('waitFor fails after its timeout, naming what it waited for', async () => {
  const started = Date.now();
  await assert.rejects(
    waitFor('something that never happens', () => false, 100),
    {
      message: 'timed out after 100 ms waiting for something that never happens',
    },
  );
  assert.ok(Date.now() - started >= 100);
});

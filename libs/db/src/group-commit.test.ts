import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GroupCommit } from './group-commit.js';

/** A store whose batches the test finishes by hand, recording what each batch carried. */
function manualStore() {
  const batches: {
    items: number[];
    finish: (results?: PromiseSettledResult<string>[]) => void;
    fail: (err: Error) => void;
  }[] = [];
  const store = (items: number[]) =>
    new Promise<PromiseSettledResult<string>[]>((resolve, reject) => {
      batches.push({
        items,
        finish: (results) => resolve(results ?? items.map((i) => ({ status: 'fulfilled', value: `stored ${i}` }))),
        fail: reject,
      });
    });
  return { batches, store };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

test('a lone request is stored at once, alone', async () => {
  const { batches, store } = manualStore();
  const group = new GroupCommit({ maxBatch: 8, concurrency: 1, store });
  const stored = group.submit(1);
  assert.deepEqual(
    batches.map((b) => b.items),
    [[1]],
  );
  batches[0]!.finish();
  assert.equal(await stored, 'stored 1');
});

test('requests that arrive while a batch is stored go together in the next one, at most maxBatch each', async () => {
  const { batches, store } = manualStore();
  const group = new GroupCommit({ maxBatch: 3, concurrency: 1, store });
  const all = [1, 2, 3, 4, 5, 6].map((i) => group.submit(i));
  assert.equal(batches.length, 1, 'one batch runs; the rest wait');
  assert.equal(group.waiting, 5);
  batches[0]!.finish();
  await tick();
  batches[1]!.finish();
  await tick();
  batches[2]!.finish();
  assert.deepEqual(
    await Promise.all(all),
    [1, 2, 3, 4, 5, 6].map((i) => `stored ${i}`),
  );
  assert.deepEqual(
    batches.map((b) => b.items),
    [[1], [2, 3, 4], [5, 6]],
  );
});

test('up to `concurrency` batches run at once', async () => {
  const { batches, store } = manualStore();
  const group = new GroupCommit({ maxBatch: 10, concurrency: 2, store });
  const all = [1, 2, 3, 4].map((i) => group.submit(i));
  assert.deepEqual(
    batches.map((b) => b.items),
    [[1], [2]],
  );
  batches[1]!.finish();
  await tick();
  assert.deepEqual(batches[2]?.items, [3, 4], 'the waiting requests go as soon as a batch is done');
  batches[0]!.finish();
  batches[2]!.finish();
  assert.equal((await Promise.all(all)).length, 4);
});

test('each request gets its own outcome; a failed store fails only its own batch', async () => {
  const { batches, store } = manualStore();
  const group = new GroupCommit({ maxBatch: 10, concurrency: 1, store });
  const first = group.submit(1);
  const [two, three] = [group.submit(2), group.submit(3)];
  batches[0]!.fail(new Error('connection lost'));
  await assert.rejects(first, /connection lost/);
  await tick();
  batches[1]!.finish([
    { status: 'rejected', reason: new Error('id reused') },
    { status: 'fulfilled', value: 'stored 3' },
  ]);
  await assert.rejects(two, /id reused/);
  assert.equal(await three, 'stored 3');
});

test('a store that settles the wrong number of requests fails its batch instead of leaving callers waiting', async () => {
  const { batches, store } = manualStore();
  const group = new GroupCommit({ maxBatch: 10, concurrency: 1, store });
  const first = group.submit(1);
  batches[0]!.finish([]);
  await assert.rejects(first, /settled 0 of 1 requests/);
  const next = group.submit(2);
  batches[1]!.finish();
  assert.equal(await next, 'stored 2', 'the queue keeps going');
});

test('refuses a batch size or concurrency below 1', () => {
  assert.throws(() => new GroupCommit({ maxBatch: 0, concurrency: 1, store: async () => [] }), RangeError);
  assert.throws(() => new GroupCommit({ maxBatch: 1, concurrency: 0, store: async () => [] }), RangeError);
});

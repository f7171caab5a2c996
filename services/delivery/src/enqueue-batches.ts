import { GroupCommit } from '@qpq/db';
import type { AppContext } from './context.js';
import { retryOnConflict } from './db/retry.js';
import { storeEnqueue, storeMessages, type BatchedEnqueue, type StoredEnqueue } from './store-enqueue.js';
import { storePlainMessages, UNIQUE_VIOLATION } from './store-plain.js';

/**
 * Statements storing batches at once. Two: one commits while the next gathers the requests that
 * arrived meanwhile; more would only make each batch smaller and take connections from Fetch and Ack.
 * Within a batch the requests' order is kept (seqs are given in the order they came).
 */
const CONCURRENT_BATCHES = 2;

/**
 * Group commit for plain messages (not Commits, which are ordered one by one): what arrives while a
 * batch is being stored goes together into the next, at most `cfg.enqueueBatch` per statement.
 */
export function enqueueBatches(ctx: AppContext): GroupCommit<BatchedEnqueue, StoredEnqueue> {
  return new GroupCommit({
    maxBatch: ctx.cfg.enqueueBatch,
    concurrency: CONCURRENT_BATCHES,
    store: (items) => storeBatch(ctx, items),
  });
}

/** One Enqueue in a transaction of its own: Commits, and messages whose id was already taken. */
export function storeAlone(ctx: AppContext, { sender, req, proofs }: BatchedEnqueue): Promise<StoredEnqueue> {
  return retryOnConflict(() => ctx.db.transaction().execute((tx) => storeEnqueue(tx, sender, req, proofs)));
}

const stored = (message: StoredEnqueue['message']): StoredEnqueue => ({
  duplicate: false,
  message,
  welcome: undefined,
});

async function storeBatch(ctx: AppContext, items: BatchedEnqueue[]): Promise<PromiseSettledResult<StoredEnqueue>[]> {
  ctx.metrics.enqueueBatchSize.record(items.length);
  try {
    // The common case: every id is new, and the whole batch is one statement.
    const receipts = await retryOnConflict(() => storePlainMessages(ctx.db, items));
    return receipts.map((r) => ({ status: 'fulfilled', value: stored(r) }));
  } catch (err) {
    if ((err as { code?: unknown }).code !== UNIQUE_VIOLATION) {
      if (items.length === 1) throw err;
      ctx.logger.warn({ err, messages: items.length }, 'a batch of enqueues failed; storing each on its own');
      return storeEachAlone(ctx, items);
    }
  }
  // A retry (or an id reused) is in the batch: the new ones are stored together, and the others are
  // answered on their own after that commit (a retry gets its original receipts).
  if (items.length === 1) return Promise.allSettled([storeAlone(ctx, items[0] as BatchedEnqueue)]);
  let receipts;
  try {
    receipts = await retryOnConflict(() => ctx.db.transaction().execute((tx) => storeMessages(tx, items)));
  } catch (err) {
    ctx.logger.warn({ err, messages: items.length }, 'a batch of enqueues failed; storing each on its own');
    return storeEachAlone(ctx, items);
  }
  return Promise.allSettled(
    items.map(async (item, i) => {
      const message = receipts[i];
      return message ? stored(message) : storeAlone(ctx, item);
    }),
  );
}

/**
 * Whatever failed a batch, each caller must get its own answer: its requests are stored one after
 * another (not all at once, which would take every pooled connection from Fetch and Ack).
 */
async function storeEachAlone(
  ctx: AppContext,
  items: BatchedEnqueue[],
): Promise<PromiseSettledResult<StoredEnqueue>[]> {
  const results: PromiseSettledResult<StoredEnqueue>[] = [];
  for (const item of items) {
    try {
      results.push({ status: 'fulfilled', value: await storeAlone(ctx, item) });
    } catch (reason) {
      results.push({ status: 'rejected', reason });
    }
  }
  return results;
}

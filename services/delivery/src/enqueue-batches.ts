import { GroupCommit } from '@qpq/db';
import type { AppContext } from './context.js';
import { retryOnConflict } from './db/retry.js';
import { storeEnqueue, storeMessages, type BatchedEnqueue, type StoredEnqueue } from './store-enqueue.js';

/**
 * Transactions storing batches at once. Two: one commits while the next gathers the requests that
 * arrived meanwhile; more would only make each batch smaller (more statements per message) and take
 * connections from Fetch and Ack. Within a batch the requests' order is kept (see storeMessages).
 */
const CONCURRENT_BATCHES = 2;

/**
 * Group commit for plain messages (not Commits, which are ordered one by one): what arrives while a
 * batch is being stored goes together into the next, at most `cfg.enqueueBatch` per transaction.
 */
export function enqueueBatches(ctx: AppContext): GroupCommit<BatchedEnqueue, StoredEnqueue> {
  return new GroupCommit({
    maxBatch: ctx.cfg.enqueueBatch,
    concurrency: CONCURRENT_BATCHES,
    store: (items) => storeBatch(ctx, items),
  });
}

/** One Enqueue in a transaction of its own. */
export function storeAlone(ctx: AppContext, { sender, req, proofs }: BatchedEnqueue): Promise<StoredEnqueue> {
  return retryOnConflict(() => ctx.db.transaction().execute((tx) => storeEnqueue(tx, sender, req, proofs)));
}

async function storeBatch(ctx: AppContext, items: BatchedEnqueue[]): Promise<PromiseSettledResult<StoredEnqueue>[]> {
  ctx.metrics.enqueueBatchSize.record(items.length);
  if (items.length === 1) return Promise.allSettled([storeAlone(ctx, items[0] as BatchedEnqueue)]);
  let receipts;
  try {
    receipts = await retryOnConflict(() => ctx.db.transaction().execute((tx) => storeMessages(tx, items)));
  } catch (err) {
    // Whatever failed the batch, each caller must get its own answer: store them one by one.
    ctx.logger.warn({ err, messages: items.length }, 'a batch of enqueues failed; storing each on its own');
    return Promise.allSettled(items.map((item) => storeAlone(ctx, item)));
  }
  // Ids already taken are answered as before (a retry gets its original receipts) once the batch is in.
  return Promise.allSettled(
    items.map(async (item, i) => {
      const message = receipts[i];
      return message ? { duplicate: false, message, welcome: undefined } : storeAlone(ctx, item);
    }),
  );
}

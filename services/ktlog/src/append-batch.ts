// What the service does with each batch of DeviceEvents from QPQ_DEVICES: append the ones that are
// entries in one transaction, and count what happened.
import { performance } from 'node:perf_hooks';
import type { BatchHandler } from './batch-consumer.js';
import type { AppContext } from './context.js';
import { entryOfEvent } from './device-events.js';
import { appendEntries, type NewEntry } from './log-append.js';

/** Appends a batch (throwing hands it back for redelivery), then updates the metrics and wakes waiters. */
export function appendBatch(ctx: AppContext): BatchHandler {
  return async (messages) => {
    const entries = messages
      .map((m) => entryOfEvent(m.data, ctx.logger, ctx.now))
      .filter((e): e is NewEntry => e !== undefined);
    const started = performance.now();
    let result: Awaited<ReturnType<typeof appendEntries>>;
    try {
      result = await appendEntries(ctx.db, entries, ctx.signingKey, ctx.now);
    } catch (err) {
      ctx.metrics.appendFailures.add(1);
      throw err;
    } finally {
      ctx.metrics.appendBatchDuration.record((performance.now() - started) / 1000);
    }
    // Counted once the batch is committed: a failed batch comes again and would count twice.
    ctx.metrics.appendedEntries.add(result.appended);
    ctx.metrics.skippedEvents.add(messages.length - entries.length);
    if (result.head) {
      ctx.metrics.observeHead(result.head);
      ctx.logger.info({ appended: result.appended, tree_size: Number(result.head.treeSize) }, 'entries appended');
      ctx.heads.notify();
    }
  };
}

import type { GetEntriesRequest, GetEntriesResponse } from '@qpq/proto';
import type { UnaryHandler } from '@qpq/runtime';
import type { AppContext } from '../context.js';
import { toLogEntry } from '../entries.js';
import { OutOfRangeError } from '../errors.js';
import { servedHead } from '../ranges.js';

/**
 * Entries [start, start + count) in order, cut at the newest head (so an auditor can recompute its
 * root) and at QPQ_KTLOG_MAX_ENTRIES; count 0 asks for a full page.
 */
export function getEntries(ctx: AppContext): UnaryHandler<GetEntriesRequest, GetEntriesResponse> {
  return async (request) => {
    const head = await servedHead(ctx);
    if (request.start >= head.treeSize) {
      throw new OutOfRangeError(`start ${request.start} is not below the newest tree head's size ${head.treeSize}`);
    }
    const count = Math.min(request.count === 0 ? ctx.cfg.maxEntriesPerPage : request.count, ctx.cfg.maxEntriesPerPage);
    const end = request.start + BigInt(count) < head.treeSize ? request.start + BigInt(count) : head.treeSize;
    const rows = await ctx.db
      .selectFrom('entries')
      .selectAll()
      .where('index', '>=', request.start)
      .where('index', '<', end)
      .orderBy('index')
      .execute();
    return { entries: rows.map(toLogEntry) };
  };
}

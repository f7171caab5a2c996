import { inclusionProofNodes } from '@qpq/merkle';
import type { LookupUserRequest, LookupUserResponse } from '@qpq/proto';
import { InvalidArgumentError, type UnaryHandler } from '@qpq/runtime';
import { sql } from 'kysely';
import type { AppContext } from '../context.js';
import { toLogEntry } from '../entries.js';
import { servedHead } from '../ranges.js';
import { readNodeHashes } from '../tree-store.js';

/** Another replica's appends do not wake this one: re-read at least this often while waiting. */
const POLL_MS = 200;

/**
 * Every entry of a user (`alice` for every domain, or exactly `alice@domain`), each with its inclusion
 * proof against the newest head. When the user has no entry yet, waits up to wait_ms (at most
 * QPQ_KTLOG_LOOKUP_WAIT) for one: a device just registered in auth reaches the log a moment later,
 * and its key should not be handed out without a proof.
 */
export function lookupUser(ctx: AppContext): UnaryHandler<LookupUserRequest, LookupUserResponse> {
  return async (request) => {
    const username = request.username.trim();
    if (username === '') throw new InvalidArgumentError('username is required');
    const deadline = Date.now() + Math.min(request.waitMs, ctx.cfg.lookupWaitMs);
    for (;;) {
      const head = await servedHead(ctx);
      let query = ctx.db.selectFrom('entries').selectAll().where('index', '<', head.treeSize);
      query = username.includes('@')
        ? query.where('address', '=', username)
        : query.where(sql<string>`split_part(address, '@', 1)`, '=', username);
      const rows = await query.orderBy('index').execute();
      const left = deadline - Date.now();
      if (rows.length === 0 && left > 0) {
        await ctx.heads.next(Math.min(left, POLL_MS));
        continue;
      }
      const size = Number(head.treeSize);
      const nodes = rows.map((r) => inclusionProofNodes(Number(r.index), size));
      const hashes = await readNodeHashes(ctx.db, nodes.flat());
      let at = 0;
      const entries = rows.map((row, i) => {
        const n = (nodes[i] as unknown[]).length;
        const proof = hashes.slice(at, at + n);
        at += n;
        return { entry: toLogEntry(row), proof };
      });
      return { head, entries };
    }
  };
}

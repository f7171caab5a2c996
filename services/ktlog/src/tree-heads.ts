import type { SignedTreeHead } from '@qpq/proto';
import type { KeyObject } from 'node:crypto';
import type { AppContext } from './context.js';
import { storeHead, treeSize } from './log-append.js';
import { rootHash } from './tree-store.js';

/** The newest (largest) stored head, as served; undefined before the first one is signed. */
export async function newestHead(ctx: Pick<AppContext, 'db' | 'logPublicKey'>): Promise<SignedTreeHead | undefined> {
  const row = await ctx.db
    .selectFrom('tree_heads')
    .selectAll()
    .orderBy('tree_size', 'desc')
    .limit(1)
    .executeTakeFirst();
  if (!row) return undefined;
  return {
    treeSize: row.tree_size,
    rootHash: new Uint8Array(row.root_hash),
    timestampMs: row.timestamp_ms,
    signature: new Uint8Array(row.signature),
    logPublicKey: ctx.logPublicKey,
  };
}

/**
 * At start: makes sure a head covers every stored entry (the empty tree on first start). Appends
 * store their head in their own transaction, so this only signs a head on a fresh log.
 */
export async function ensureHead(ctx: Pick<AppContext, 'db' | 'logPublicKey' | 'now'>, key: KeyObject): Promise<void> {
  const size = await treeSize(ctx.db);
  const head = await newestHead(ctx);
  if (head && head.treeSize >= BigInt(size)) return;
  await storeHead(ctx.db, size, await rootHash(ctx.db, size), key, ctx.now);
}

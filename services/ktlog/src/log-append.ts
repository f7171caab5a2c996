// Appending DeviceEvents to the log: one transaction per batch, covered by one new signed head.
import { encodeLogEntry, signTreeHead } from '@qpq/crypto';
import { leafHash, nodeHash, perfectSubtrees } from '@qpq/merkle';
import type { SignedTreeHead } from '@qpq/proto';
import { sql, type Insertable, type Kysely, type Transaction } from 'kysely';
import type { KeyObject } from 'node:crypto';
import type { EntriesTable, KtlogTables } from './db/schema.js';
import { appendToFrontier, readNodeHashes } from './tree-store.js';

/** What an entry binds, as taken from a DeviceEvent. */
export interface NewEntry {
  eventId: string;
  op: number;
  address: string;
  deviceId: string;
  identityKey: Uint8Array;
  timestampMs: bigint;
}

// Appends are serialized across replicas by this transaction-scoped advisory lock: indices stay
// gap-free and every head covers a prefix of what is committed.
const APPEND_LOCK = 0x6b746c6f67; // "ktlog"
/** Rows per INSERT, under Postgres's 65535 bind parameters. */
const INSERT_CHUNK = 1000;

export interface AppendResult {
  /** Entries appended (events seen before are left out). */
  appended: number;
  /** The head signed for the new size; undefined when nothing was appended. */
  head: SignedTreeHead | undefined;
}

/**
 * Appends the entries whose event ids the log has not seen (the first of any repeats within the
 * batch), stores the perfect subtrees they complete, and signs and stores the new head, all in one
 * transaction: a crash leaves either all of it or none.
 */
export async function appendEntries(
  db: Kysely<KtlogTables>,
  entries: readonly NewEntry[],
  signingKey: KeyObject,
  now: () => number,
): Promise<AppendResult> {
  return db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(${APPEND_LOCK})`.execute(trx);
    const fresh = await unseen(trx, entries);
    if (fresh.length === 0) return { appended: 0, head: undefined };
    const size = await treeSize(trx);
    const frontier = await readNodeHashes(trx, perfectSubtrees(0, size));
    const leaves = fresh.map((e) => leafHash(encodeLogEntry(e)));
    const { nodes, root } = appendToFrontier(size, frontier, leaves, nodeHash);
    for (let i = 0; i < fresh.length; i += INSERT_CHUNK) {
      await trx
        .insertInto('entries')
        .values(fresh.slice(i, i + INSERT_CHUNK).map((e, j) => entryRow(e, size + i + j, leaves[i + j] as Uint8Array)))
        .execute();
    }
    for (let i = 0; i < nodes.length; i += INSERT_CHUNK) {
      await trx
        .insertInto('nodes')
        .values(
          nodes
            .slice(i, i + INSERT_CHUNK)
            .map((n) => ({ level: n.level, position: n.position, hash: Buffer.from(n.hash) })),
        )
        .execute();
    }
    const head = await storeHead(trx, size + fresh.length, root, signingKey, now);
    return { appended: fresh.length, head };
  });
}

/** The `entries` row of entry `index` with its leaf hash. */
export function entryRow(e: NewEntry, index: number, leaf: Uint8Array): Insertable<EntriesTable> {
  return {
    index,
    event_id: e.eventId,
    op: e.op,
    address: e.address,
    device_id: e.deviceId,
    identity_key: Buffer.from(e.identityKey),
    timestamp_ms: e.timestampMs,
    leaf_hash: Buffer.from(leaf),
  };
}

/** Entries in the log: the index of the next one. */
export async function treeSize(db: Kysely<KtlogTables>): Promise<number> {
  const row = await db
    .selectFrom('entries')
    .select((eb) => eb.fn.max('index').as('last'))
    .executeTakeFirst();
  return row?.last === null || row?.last === undefined ? 0 : Number(row.last) + 1;
}

/** Signs and stores the head of `size` entries (keeping the one already stored for that size). */
export async function storeHead(
  db: Kysely<KtlogTables> | Transaction<KtlogTables>,
  size: number,
  root: Uint8Array,
  signingKey: KeyObject,
  now: () => number,
): Promise<SignedTreeHead> {
  const head = signTreeHead(signingKey, { treeSize: size, rootHash: root, timestampMs: BigInt(now()) });
  await db
    .insertInto('tree_heads')
    .values({
      tree_size: size,
      root_hash: Buffer.from(head.rootHash),
      timestamp_ms: head.timestampMs,
      signature: Buffer.from(head.signature),
    })
    .onConflict((oc) => oc.column('tree_size').doNothing())
    .execute();
  return head;
}

async function unseen(trx: Transaction<KtlogTables>, entries: readonly NewEntry[]): Promise<NewEntry[]> {
  const firsts = new Map<string, NewEntry>();
  for (const e of entries) if (!firsts.has(e.eventId)) firsts.set(e.eventId, e);
  if (firsts.size === 0) return [];
  const seen = await trx
    .selectFrom('entries')
    .select('event_id')
    .where('event_id', 'in', [...firsts.keys()])
    .execute();
  for (const row of seen) firsts.delete(row.event_id);
  return [...firsts.values()];
}

import { sql, type Kysely } from 'kysely';
import type { AppContext } from './context.js';
import type { BlobTables } from './db/schema.js';

/**
 * Serializes everything that creates, claims or deletes one blob (until the transaction ends), so a
 * blob being deleted and the same bytes being uploaded again never interleave — with the fs backend
 * the file operations happen under it too.
 */
export async function lockBlob(tx: Kysely<BlobTables>, blobId: string): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtextextended(${`blob:${blobId}`}, 0))`.execute(tx);
}

/**
 * Adds the account's claim on a blob, or extends it (a claim never shortens), and lets the blob live at
 * least as long. Returns the claim's expiry.
 */
export async function claimBlob(
  tx: Kysely<BlobTables>,
  blobId: string,
  accountId: string,
  expiresAtMs: number,
): Promise<number> {
  const claim = await tx
    .insertInto('claims')
    .values({ blob_id: blobId, account_id: accountId, expires_at_ms: expiresAtMs })
    .onConflict((oc) =>
      oc
        .columns(['blob_id', 'account_id'])
        .doUpdateSet({ expires_at_ms: sql<bigint>`greatest(claims.expires_at_ms, excluded.expires_at_ms)` }),
    )
    .returning('expires_at_ms')
    .executeTakeFirstOrThrow();
  await tx
    .updateTable('blobs')
    .set({ expires_at_ms: sql<bigint>`greatest(expires_at_ms, ${claim.expires_at_ms})` })
    .where('id', '=', blobId)
    .execute();
  return Number(claim.expires_at_ms);
}

/** Deletes a blob with its claims, the uploads that completed into it, and its bytes (under lockBlob). */
export async function removeBlob(ctx: AppContext, tx: Kysely<BlobTables>, blobId: string): Promise<void> {
  await tx.deleteFrom('uploads').where('blob_id', '=', blobId).execute();
  await tx.deleteFrom('blobs').where('id', '=', blobId).execute(); // claims go with it (on delete cascade)
  await ctx.storage.deleteBlob(tx, blobId);
}

/** A blob that has not expired, or undefined. */
export async function liveBlob(
  ctx: AppContext,
  blobId: string,
): Promise<{ size: number; expiresAtMs: number } | undefined> {
  const row = await ctx.db
    .selectFrom('blobs')
    .select(['size', 'expires_at_ms'])
    .where('id', '=', blobId)
    .where('expires_at_ms', '>', BigInt(ctx.now()))
    .executeTakeFirst();
  return row && { size: Number(row.size), expiresAtMs: Number(row.expires_at_ms) };
}

/** Bytes of all complete blobs (the stored-bytes gauge). */
export async function storedBlobBytes(db: Kysely<BlobTables>): Promise<number> {
  const { total } = await db
    .selectFrom('blobs')
    .select(sql<string>`coalesce(sum(size), 0)::text`.as('total'))
    .executeTakeFirstOrThrow();
  return Number(total);
}

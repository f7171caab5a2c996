import { fileCiphertextSize } from '@qpq/crypto';
import type { UploadBegin, UploadResponse } from '@qpq/proto';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '@qpq/runtime';
import type { Kysely, Selectable } from 'kysely';
import { createHash } from 'node:crypto';
import { claimBlob, lockBlob } from './blobs.js';
import type { AppContext } from './context.js';
import type { BlobTables, UploadsTable } from './db/schema.js';
import { FileTooLargeError, HashMismatchError, OffsetMismatchError } from './errors.js';
import { blobIdOf, checkUploadId } from './ids.js';

/** The smallest blob: an empty file's ciphertext (its one chunk's tag). Nothing smaller is a file. */
const MIN_BLOB_BYTES = fileCiphertextSize(0);

/** An unfinished upload of one account, as its call works on it. */
export interface Upload {
  accountId: string;
  uploadId: string;
  storageKey: string;
  size: number;
  sha256: Buffer;
  blobId: string;
  expiresAtMs: number;
  /** Bytes stored when the call began (the call counts on from here). */
  stored: number;
}

/** What begin found: an upload to receive bytes for, or an answer already (complete). */
export type Begun = { kind: 'receive'; upload: Upload } | { kind: 'complete'; response: UploadResponse };

/**
 * Checks an UploadBegin and finds or creates the caller's upload. Refusals come before anything is
 * stored: a size over the limit, an expiry in the past, an offset that is not the stored count, a
 * resume that declares another size or hash. When a blob with that hash is stored already, the upload
 * is complete at once: the caller's claim is added (or extended) and any bytes it had stored dropped.
 */
export async function beginUpload(ctx: AppContext, accountId: string, begin: UploadBegin): Promise<Begun> {
  const uploadId = checkUploadId(begin.uploadId);
  if (begin.sha256.length !== 32) throw new InvalidArgumentError('sha256 must be the 32 bytes of a SHA-256');
  if (begin.size < BigInt(MIN_BLOB_BYTES)) {
    throw new InvalidArgumentError(`size must be at least ${MIN_BLOB_BYTES} bytes (the ciphertext of an empty file)`);
  }
  if (begin.size > BigInt(ctx.cfg.maxBlobBytes)) {
    ctx.metrics.refused('too_large');
    throw new FileTooLargeError(ctx.cfg.maxFileBytes, ctx.cfg.maxBlobBytes, begin.size);
  }
  const size = Number(begin.size);
  const sha256 = Buffer.from(begin.sha256);
  const blobId = blobIdOf(sha256);
  const expiresAtMs = resolveExpiry(ctx, begin.expiresAtMs);

  const stored = await ctx.db.selectFrom('blobs').select('size').where('id', '=', blobId).executeTakeFirst();
  if (stored && Number(stored.size) !== size) {
    throw new InvalidArgumentError(
      `size ${size} differs from the stored blob with this SHA-256 (${stored.size} bytes)`,
    );
  }
  if (stored && (await ctx.storage.hasBlob(blobId, size))) {
    const response = await completeByExisting(ctx, { accountId, uploadId, size, sha256, blobId, expiresAtMs });
    if (response) return { kind: 'complete', response };
  }

  return ctx.db.transaction().execute(async (tx): Promise<Begun> => {
    let row = await selectUploadForUpdate(tx, accountId, uploadId);
    if (!row) {
      if (begin.offset !== 0n) {
        throw new NotFoundError(
          `no upload ${uploadId} of yours to continue (never begun, or collected): begin at offset 0`,
        );
      }
      row = await tx
        .insertInto('uploads')
        .values({
          account_id: accountId,
          upload_id: uploadId,
          size,
          sha256,
          expires_at_ms: expiresAtMs,
          stored: 0,
          blob_id: null,
          touched_at_ms: ctx.now(),
        })
        .onConflict((oc) => oc.columns(['account_id', 'upload_id']).doNothing())
        .returningAll()
        .executeTakeFirst();
      // A concurrent begin of the same upload inserted first: continue with its row.
      row ??= await selectUploadForUpdate(tx, accountId, uploadId);
      if (!row) throw new Error(`upload ${uploadId} vanished while it was begun`);
    }
    if (Number(row.size) !== size || !row.sha256.equals(sha256)) {
      throw new FailedPreconditionError(
        `upload ${uploadId} was begun with another size or SHA-256: use a new upload_id for other bytes`,
      );
    }
    if (row.blob_id !== null) {
      // Complete already (its answer was lost, say): the same answer again.
      return { kind: 'complete', response: await completedResponse(tx, row.blob_id, accountId, size) };
    }
    if (BigInt(row.stored) !== begin.offset) {
      ctx.metrics.refused('offset');
      throw new OffsetMismatchError(uploadId, Number(row.stored), begin.offset);
    }
    await tx
      .updateTable('uploads')
      .set({ expires_at_ms: expiresAtMs, touched_at_ms: ctx.now() })
      .where('account_id', '=', accountId)
      .where('upload_id', '=', uploadId)
      .execute();
    const upload: Upload = {
      accountId,
      uploadId,
      storageKey: row.storage_key,
      size,
      sha256,
      blobId,
      expiresAtMs,
      stored: Number(row.stored),
    };
    return { kind: 'receive', upload };
  });
}

/**
 * Stores one part at `offset`, which must still be where the upload's stored bytes end (another call
 * on the same upload may have moved it: FAILED_PRECONDITION). Bytes and count commit together.
 */
export async function storePart(ctx: AppContext, upload: Upload, offset: number, bytes: Uint8Array): Promise<void> {
  await ctx.db.transaction().execute(async (tx) => {
    const row = await selectUploadForUpdate(tx, upload.accountId, upload.uploadId);
    if (!row || row.blob_id !== null || row.storage_key !== upload.storageKey) {
      throw new NotFoundError(`upload ${upload.uploadId} is no longer under way (completed or collected meanwhile)`);
    }
    if (Number(row.stored) !== offset) {
      throw new FailedPreconditionError(
        `upload ${upload.uploadId} has ${row.stored} bytes stored, not ${offset}: another call is storing it`,
      );
    }
    await ctx.storage.writeUpload(tx, upload.storageKey, offset, bytes);
    await tx
      .updateTable('uploads')
      .set({ stored: offset + bytes.byteLength, touched_at_ms: ctx.now() })
      .where('account_id', '=', upload.accountId)
      .where('upload_id', '=', upload.uploadId)
      .execute();
  });
}

/** Deletes an unfinished upload and every byte of it. */
export async function dropUpload(ctx: AppContext, upload: Upload): Promise<void> {
  await ctx.db.transaction().execute(async (tx) => {
    await tx
      .deleteFrom('uploads')
      .where('account_id', '=', upload.accountId)
      .where('upload_id', '=', upload.uploadId)
      .where('storage_key', '=', upload.storageKey)
      .execute();
    await ctx.storage.discardUpload(tx, upload.storageKey);
  });
}

/**
 * Finishes an upload whose bytes are all stored: hashes them by reading them back (a hash state cannot
 * outlive a call, and the upload may have been sent over several), drops everything on a mismatch
 * (DATA_LOSS), else makes the bytes the blob — or drops them when the same blob is stored already —
 * and records the caller's claim.
 */
export async function completeUpload(ctx: AppContext, upload: Upload): Promise<UploadResponse> {
  const hash = createHash('sha256');
  for await (const piece of ctx.storage.readUpload(upload.storageKey, upload.size)) hash.update(piece);
  if (!hash.digest().equals(upload.sha256)) {
    await dropUpload(ctx, upload);
    ctx.metrics.refused('hash_mismatch');
    throw new HashMismatchError();
  }
  const { response, dedup } = await ctx.db.transaction().execute(async (tx) => {
    await lockBlob(tx, upload.blobId);
    const row = await selectUploadForUpdate(tx, upload.accountId, upload.uploadId);
    if (!row || row.storage_key !== upload.storageKey) {
      throw new NotFoundError(`upload ${upload.uploadId} is no longer under way (collected meanwhile)`);
    }
    if (row.blob_id !== null) {
      // Another call on the same upload completed it first.
      return { response: await completedResponse(tx, row.blob_id, upload.accountId, upload.size), dedup: false };
    }
    const existing = await tx.selectFrom('blobs').select('id').where('id', '=', upload.blobId).executeTakeFirst();
    const dedup = existing !== undefined && (await ctx.storage.hasBlob(upload.blobId, upload.size));
    if (dedup) {
      await ctx.storage.discardUpload(tx, upload.storageKey);
    } else {
      // A blob row whose bytes went missing is healed by these.
      await ctx.storage.promoteUpload(tx, upload.storageKey, upload.blobId);
      await tx
        .insertInto('blobs')
        .values({ id: upload.blobId, size: upload.size, expires_at_ms: upload.expiresAtMs, created_at_ms: ctx.now() })
        .onConflict((oc) => oc.column('id').doNothing())
        .execute();
    }
    const expiresAtMs = await claimBlob(tx, upload.blobId, upload.accountId, upload.expiresAtMs);
    await markComplete(tx, ctx, upload.accountId, upload.uploadId, upload.blobId, upload.size);
    return { response: completeResponse(upload.blobId, upload.size, expiresAtMs), dedup };
  });
  ctx.metrics.uploadsCompleted.add(1);
  if (dedup) ctx.metrics.dedupHits.add(1);
  return response;
}

/** expires_at_ms as asked: 0 → the deployment's retention; later than that → capped; past → refused. */
export function resolveExpiry(ctx: AppContext, requestedMs: bigint): number {
  const now = ctx.now();
  const latest = now + ctx.cfg.maxRetentionMs;
  if (requestedMs === 0n) return latest;
  if (requestedMs <= BigInt(now)) {
    throw new InvalidArgumentError('expires_at_ms is not in the future: give a later time, or 0 for the default');
  }
  return requestedMs > BigInt(latest) ? latest : Number(requestedMs);
}

/**
 * The blob is stored already: claims it for the caller and records the upload as complete (dropping
 * any bytes a begun upload of the same id had stored). Undefined when the blob went meanwhile.
 */
async function completeByExisting(
  ctx: AppContext,
  u: { accountId: string; uploadId: string; size: number; sha256: Buffer; blobId: string; expiresAtMs: number },
): Promise<UploadResponse | undefined> {
  const response = await ctx.db.transaction().execute(async (tx) => {
    await lockBlob(tx, u.blobId);
    const blob = await tx.selectFrom('blobs').select('id').where('id', '=', u.blobId).executeTakeFirst();
    if (!blob) return undefined;
    const row = await selectUploadForUpdate(tx, u.accountId, u.uploadId);
    if (row && (Number(row.size) !== u.size || !row.sha256.equals(u.sha256))) {
      throw new FailedPreconditionError(
        `upload ${u.uploadId} was begun with another size or SHA-256: use a new upload_id for other bytes`,
      );
    }
    if (row && row.blob_id === null) await ctx.storage.discardUpload(tx, row.storage_key);
    const expiresAtMs = await claimBlob(tx, u.blobId, u.accountId, u.expiresAtMs);
    if (row) {
      await markComplete(tx, ctx, u.accountId, u.uploadId, u.blobId, u.size);
    } else {
      await tx
        .insertInto('uploads')
        .values({
          account_id: u.accountId,
          upload_id: u.uploadId,
          size: u.size,
          sha256: u.sha256,
          expires_at_ms: u.expiresAtMs,
          stored: u.size,
          blob_id: u.blobId,
          touched_at_ms: ctx.now(),
        })
        .execute();
    }
    return completeResponse(u.blobId, u.size, expiresAtMs);
  });
  if (response) {
    ctx.metrics.uploadsCompleted.add(1);
    ctx.metrics.dedupHits.add(1);
  }
  return response;
}

async function markComplete(
  tx: Kysely<BlobTables>,
  ctx: AppContext,
  accountId: string,
  uploadId: string,
  blobId: string,
  size: number,
): Promise<void> {
  await tx
    .updateTable('uploads')
    .set({ blob_id: blobId, stored: size, touched_at_ms: ctx.now() })
    .where('account_id', '=', accountId)
    .where('upload_id', '=', uploadId)
    .execute();
}

/** The answer for an upload that completed earlier, with the caller's claim as it stands. */
async function completedResponse(
  tx: Kysely<BlobTables>,
  blobId: string,
  accountId: string,
  size: number,
): Promise<UploadResponse> {
  const claim = await tx
    .selectFrom('claims')
    .select('expires_at_ms')
    .where('blob_id', '=', blobId)
    .where('account_id', '=', accountId)
    .executeTakeFirst();
  return completeResponse(blobId, size, claim ? Number(claim.expires_at_ms) : 0);
}

function completeResponse(blobId: string, size: number, expiresAtMs: number): UploadResponse {
  return { blobId, complete: true, stored: BigInt(size), expiresAtMs: BigInt(expiresAtMs) };
}

function selectUploadForUpdate(
  tx: Kysely<BlobTables>,
  accountId: string,
  uploadId: string,
): Promise<Selectable<UploadsTable> | undefined> {
  return tx
    .selectFrom('uploads')
    .selectAll()
    .where('account_id', '=', accountId)
    .where('upload_id', '=', uploadId)
    .forUpdate()
    .executeTakeFirst();
}

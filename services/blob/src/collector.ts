import { lockBlob, removeBlob } from './blobs.js';
import { PeriodicTask } from '@qpq/runtime';
import type { AppContext } from './context.js';

/** Rounds per collection: a backlog is worked off over a few intervals instead of one long burst. */
const MAX_ROUNDS_PER_COLLECTION = 10;

export interface Collected {
  /** Blobs deleted because every claim on them expired. */
  blobs: number;
  /** Unfinished uploads deleted because nobody continued them for QPQ_BLOB_UPLOAD_TTL. */
  uploads: number;
}

/**
 * Every QPQ_GC_INTERVAL: deletes blobs whose claims all expired (bytes included), expired claims on
 * blobs others still claim, and uploads untouched for QPQ_BLOB_UPLOAD_TTL (unfinished ones with their
 * bytes; finished ones are only records). Each blob is deleted under its lock and re-checked there, so a
 * claim extended at the same moment keeps it.
 */
export class BlobCollector {
  private readonly task: PeriodicTask;

  constructor(private readonly ctx: AppContext) {
    this.task = new PeriodicTask(() => this.collect(), {
      intervalMs: ctx.cfg.gcIntervalMs,
      onError: (err) => ctx.logger.warn({ err }, 'blob collection failed; retrying next interval'),
    });
  }

  start(): void {
    this.task.start();
  }

  /** Stops the timer and waits for a collection in progress. */
  async stop(): Promise<void> {
    await this.task.stop();
  }

  /** One collection now. */
  async collect(): Promise<Collected> {
    const collected: Collected = { blobs: 0, uploads: 0 };
    for (let round = 0; round < MAX_ROUNDS_PER_COLLECTION && !this.task.stopping; round++) {
      const blobs = await this.collectExpiredBlobs();
      const uploads = await this.collectAbandonedUploads();
      collected.blobs += blobs.collected;
      collected.uploads += uploads.collected;
      if (blobs.seen < this.ctx.cfg.gcBatchSize && uploads.seen < this.ctx.cfg.gcBatchSize) break;
    }
    await this.dropExpiredClaims();
    if (collected.blobs > 0 || collected.uploads > 0)
      this.ctx.logger.info(collected, 'expired blobs and abandoned uploads collected');
    return collected;
  }

  private async collectExpiredBlobs(): Promise<{ seen: number; collected: number }> {
    const { ctx } = this;
    const now = ctx.now();
    const expired = await ctx.db
      .selectFrom('blobs')
      .select('id')
      .where('expires_at_ms', '<=', BigInt(now))
      .orderBy('expires_at_ms')
      .limit(ctx.cfg.gcBatchSize)
      .execute();
    let collected = 0;
    for (const { id } of expired) {
      if (this.task.stopping) break;
      const removed = await ctx.db.transaction().execute(async (tx) => {
        await lockBlob(tx, id);
        const still = await tx
          .selectFrom('blobs')
          .select('id')
          .where('id', '=', id)
          .where('expires_at_ms', '<=', BigInt(now))
          .executeTakeFirst();
        if (still) await removeBlob(ctx, tx, id);
        return still !== undefined;
      });
      if (removed) {
        collected++;
        ctx.metrics.collected.add(1, { kind: 'blob' });
      }
    }
    return { seen: expired.length, collected };
  }

  private async collectAbandonedUploads(): Promise<{ seen: number; collected: number }> {
    const { ctx } = this;
    const cutoff = ctx.now() - ctx.cfg.uploadTtlMs;
    const stale = await ctx.db
      .selectFrom('uploads')
      .select(['account_id', 'upload_id', 'storage_key'])
      .where('touched_at_ms', '<=', BigInt(cutoff))
      .orderBy('touched_at_ms')
      .limit(ctx.cfg.gcBatchSize)
      .execute();
    let collected = 0;
    for (const upload of stale) {
      if (this.task.stopping) break;
      const removed = await ctx.db.transaction().execute(async (tx) => {
        // Re-checked under the row lock: a part stored meanwhile touched it, and it stays.
        const row = await tx
          .deleteFrom('uploads')
          .where('account_id', '=', upload.account_id)
          .where('upload_id', '=', upload.upload_id)
          .where('touched_at_ms', '<=', BigInt(cutoff))
          .returning(['storage_key', 'blob_id'])
          .executeTakeFirst();
        if (row && row.blob_id === null) await ctx.storage.discardUpload(tx, row.storage_key);
        return row !== undefined && row.blob_id === null;
      });
      if (removed) {
        collected++;
        ctx.metrics.collected.add(1, { kind: 'upload' });
      }
    }
    return { seen: stale.length, collected };
  }

  /** Claims that expired on blobs someone else still claims: that uploader can no longer delete it. */
  private async dropExpiredClaims(): Promise<void> {
    const { db } = this.ctx;
    const now = this.ctx.now();
    await db.transaction().execute(async (tx) => {
      await tx
        .deleteFrom('uploads')
        .where(({ exists, selectFrom }) =>
          exists(
            selectFrom('claims')
              .select('claims.blob_id')
              .whereRef('claims.blob_id', '=', 'uploads.blob_id')
              .whereRef('claims.account_id', '=', 'uploads.account_id')
              .where('claims.expires_at_ms', '<=', BigInt(now)),
          ),
        )
        .execute();
      await tx.deleteFrom('claims').where('expires_at_ms', '<=', BigInt(now)).execute();
    });
  }
}

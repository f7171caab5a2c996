import { databaseReachable, migrateToLatest, openDatabase, registerPoolMetrics } from '@qpq/db';
import { BlobServiceService } from '@qpq/proto';
import { ServiceHost } from '@qpq/runtime';
import type { Kysely } from 'kysely';
import { storedBlobBytes } from './blobs.js';
import { BlobCollector } from './collector.js';
import type { BlobConfig } from './config.js';
import type { AppContext } from './context.js';
import { migrations } from './db/migrations/index.js';
import type { BlobTables } from './db/schema.js';
import { BlobMetrics } from './metrics.js';
import { deleteBlob } from './routes/delete-blob.js';
import { download } from './routes/download.js';
import { getUpload } from './routes/get-upload.js';
import { upload } from './routes/upload.js';
import type { BlobStorage } from './storage/blob-storage.js';
import { FsBlobStorage } from './storage/fs-storage.js';
import { PostgresBlobStorage } from './storage/postgres-storage.js';

export { blobEnv, envToConfig, readBlobConfig, STORAGE_KINDS, type BlobConfig, type StorageKind } from './config.js';
export type { AppContext } from './context.js';
export { migrations as blobMigrations } from './db/migrations/index.js';
export type { BlobTables } from './db/schema.js';
export type { Collected } from './collector.js';

/** The Postgres schema this service owns. */
export const SCHEMA = 'blob';

/** Parts a test (or an embedding process) may supply instead of having the service make its own. */
export interface BlobOverrides {
  db?: Kysely<BlobTables>;
  /** Clock in ms since the epoch (expiries, upload ages); tests move it forward to see collection. */
  now?: () => number;
}

/**
 * Encrypted files, addressed by the SHA-256 of their ciphertext (BlobService): resumable chunked
 * uploads checked against a size limit and their declared hash, identical uploads stored once,
 * streamed downloads, uploader claims with expiries, and a collector for what expired or was abandoned.
 * Bytes live in Postgres or in files (QPQ_BLOB_STORAGE); metadata in Postgres, schema `blob`.
 */
export class BlobService {
  private constructor(
    readonly ctx: AppContext,
    readonly host: ServiceHost,
    readonly collector: BlobCollector,
    private readonly ownsDb: boolean,
  ) {}

  /** Connects to Postgres, migrates the `blob` schema and opens the storage backend; `start()` serves. */
  static async create(cfg: BlobConfig, overrides: BlobOverrides = {}): Promise<BlobService> {
    const host = new ServiceHost('blob', cfg);
    let db = overrides.db;
    let storage: BlobStorage | undefined;
    try {
      db ??= await openDatabase<BlobTables>({ url: cfg.databaseUrl, schema: SCHEMA });
      // The service's pool (metadata, and bytes written with postgres storage); the storage's read pool is not reported.
      registerPoolMetrics(host.telemetry.meter, db);
      await migrateToLatest(db as Kysely<unknown>, SCHEMA, migrations);
      storage =
        cfg.storage === 'fs'
          ? await FsBlobStorage.open(cfg.blobDir!, cfg.chunkBytes)
          : PostgresBlobStorage.open(db, cfg.databaseUrl, SCHEMA);
      const metricsDb = db;
      const ctx: AppContext = {
        cfg,
        db,
        storage,
        logger: host.logger,
        metrics: new BlobMetrics(host.telemetry, () => storedBlobBytes(metricsDb)),
        now: overrides.now ?? Date.now,
      };
      return new BlobService(ctx, host, new BlobCollector(ctx), !overrides.db);
    } catch (err) {
      await storage?.close();
      if (db && !overrides.db) await db.destroy();
      await host.stop();
      throw err;
    }
  }

  /** gRPC `host:port` (the real port when configured with port 0). */
  get grpcAddress(): string {
    return this.host.grpcAddress;
  }

  /** HTTP `host:port` of /healthz, /readyz and /metrics. */
  get httpAddress(): string {
    return this.host.httpAddress;
  }

  async start(): Promise<this> {
    const { ctx, host } = this;
    host.grpc.addService(
      'qpq.v1.BlobService',
      BlobServiceService,
      { upload: upload(ctx), getUpload: getUpload(ctx), download: download(ctx), deleteBlob: deleteBlob(ctx) },
      { streamIdleTimeoutMs: ctx.cfg.idleTimeoutMs },
    );
    await host.start(() => databaseReachable(ctx.db as Kysely<unknown>));
    this.collector.start();
    return this;
  }

  /**
   * Drains calls in flight (an upload cut by the drain timeout keeps what it stored), stops the
   * collector and closes the pool.
   */
  async stop(): Promise<void> {
    await this.host.stop();
    // Handlers of calls the drain cut off still store what they received before the pool closes.
    await this.host.grpc.settled(this.ctx.cfg.drainTimeoutMs);
    await this.collector.stop();
    await this.ctx.storage.close();
    if (this.ownsDb) await this.ctx.db.destroy();
  }
}

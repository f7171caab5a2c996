import type { Logger } from '@qpq/runtime';
import type { Kysely } from 'kysely';
import type { BlobConfig } from './config.js';
import type { BlobTables } from './db/schema.js';
import type { BlobMetrics } from './metrics.js';
import type { BlobStorage } from './storage/blob-storage.js';

/** Everything a route needs, built once by BlobService.create. */
export interface AppContext {
  cfg: BlobConfig;
  /** Metadata (and, with the postgres backend, bytes) in schema `blob`. */
  db: Kysely<BlobTables>;
  /** Where file bytes live (QPQ_BLOB_STORAGE). */
  storage: BlobStorage;
  logger: Logger;
  metrics: BlobMetrics;
  /** Milliseconds since the Unix epoch: expiries and upload ages; tests move it forward. */
  now: () => number;
}

import { fileCiphertextSize } from '@qpq/crypto';
import {
  baseServiceEnv,
  ConfigError,
  databaseEnv,
  env,
  readEnv,
  toBaseServiceConfig,
  type BaseServiceConfig,
} from '@qpq/runtime';

/** The storage backends of file bytes (metadata lives in Postgres either way). */
export const STORAGE_KINDS = ['postgres', 'fs'] as const;
export type StorageKind = (typeof STORAGE_KINDS)[number];

const MiB = 1024 * 1024;
/** Room in a gRPC message for everything but a download chunk's bytes (field tags, lengths). */
const MESSAGE_OVERHEAD_BYTES = 1024;

/**
 * The blob service's environment. Defaults serve a laptop running `npm run dev`:
 * - QPQ_LISTEN 127.0.0.1:7105 (gRPC), QPQ_METRICS_LISTEN 127.0.0.1:9105 (/healthz, /readyz, /metrics)
 * - QPQ_DATABASE_URL postgres://postgres:qpq-dev@127.0.0.1:5433/qpq (tables live in schema `blob`)
 * - QPQ_BLOB_MAX_FILE_BYTES 52428800 (50 MiB): the largest file, in plaintext bytes. A blob (ciphertext)
 *   may be `fileCiphertextSize` of it (libs/crypto: plus one tag per 64 KiB chunk).
 * - QPQ_BLOB_STORAGE postgres | fs: where file bytes go. `postgres` (default) keeps them in the `blob`
 *   schema; `fs` keeps them under QPQ_BLOB_DIR (required then), e.g. a Kubernetes volume.
 * - QPQ_BLOB_MAX_RETENTION 30d: the longest a blob is kept after its upload (and the expiry of an upload
 *   that asks for none).
 * - QPQ_BLOB_UPLOAD_TTL 24h: an unfinished upload nobody continued for this long is collected.
 * - QPQ_BLOB_PART_BYTES 1048576: bytes written at once (one Postgres row, one fsync'ed append) — also
 *   about the most of an upload the service holds in memory.
 * - QPQ_BLOB_CHUNK_BYTES 262144: bytes per Download message; must fit QPQ_MAX_MESSAGE_BYTES.
 * - QPQ_BLOB_IDLE_TIMEOUT 60s: an upload that sends nothing, or a download that reads nothing, for this
 *   long is ended (an upload keeps what it stored).
 * - QPQ_GC_INTERVAL 60s between collections of expired blobs and abandoned uploads; QPQ_GC_BATCH 100
 *   of each per collection round.
 */
export const blobEnv = {
  ...baseServiceEnv({ grpc: 7105, http: 9105 }),
  ...databaseEnv(),
  QPQ_BLOB_MAX_FILE_BYTES: env.integer(50 * MiB, { min: 1, max: 4096 * MiB }),
  QPQ_BLOB_STORAGE: env.oneOf(STORAGE_KINDS, 'postgres'),
  QPQ_BLOB_DIR: env.optional(env.string()),
  QPQ_BLOB_MAX_RETENTION: env.duration('30d'),
  QPQ_BLOB_UPLOAD_TTL: env.duration('24h'),
  QPQ_BLOB_PART_BYTES: env.integer(MiB, { min: 4096, max: 16 * MiB }),
  QPQ_BLOB_CHUNK_BYTES: env.integer(256 * 1024, { min: 1024, max: 16 * MiB }),
  QPQ_BLOB_IDLE_TIMEOUT: env.duration('60s'),
  QPQ_GC_INTERVAL: env.duration('60s'),
  QPQ_GC_BATCH: env.integer(100, { min: 1, max: 10_000 }),
};

export interface BlobConfig extends BaseServiceConfig {
  databaseUrl: string;
  /** The plaintext limit of a file (QPQ_BLOB_MAX_FILE_BYTES). */
  maxFileBytes: number;
  /** The ciphertext limit of a blob: fileCiphertextSize(maxFileBytes), never computed anywhere else. */
  maxBlobBytes: number;
  storage: StorageKind;
  /** Root of the fs backend's files; set when storage is `fs`. */
  blobDir: string | undefined;
  maxRetentionMs: number;
  uploadTtlMs: number;
  partBytes: number;
  chunkBytes: number;
  idleTimeoutMs: number;
  gcIntervalMs: number;
  gcBatchSize: number;
}

export function envToConfig(e: ReturnType<typeof readEnv<typeof blobEnv>>): BlobConfig {
  const cfg: BlobConfig = {
    ...toBaseServiceConfig(e),
    databaseUrl: e.QPQ_DATABASE_URL,
    maxFileBytes: e.QPQ_BLOB_MAX_FILE_BYTES,
    maxBlobBytes: fileCiphertextSize(e.QPQ_BLOB_MAX_FILE_BYTES),
    storage: e.QPQ_BLOB_STORAGE,
    blobDir: e.QPQ_BLOB_DIR,
    maxRetentionMs: e.QPQ_BLOB_MAX_RETENTION,
    uploadTtlMs: e.QPQ_BLOB_UPLOAD_TTL,
    partBytes: e.QPQ_BLOB_PART_BYTES,
    chunkBytes: e.QPQ_BLOB_CHUNK_BYTES,
    idleTimeoutMs: e.QPQ_BLOB_IDLE_TIMEOUT,
    gcIntervalMs: e.QPQ_GC_INTERVAL,
    gcBatchSize: e.QPQ_GC_BATCH,
  };
  const problems: string[] = [];
  if (cfg.storage === 'fs' && !cfg.blobDir)
    problems.push('QPQ_BLOB_DIR is missing: QPQ_BLOB_STORAGE=fs needs a directory');
  if (cfg.chunkBytes + MESSAGE_OVERHEAD_BYTES > cfg.maxMessageBytes) {
    problems.push(
      `QPQ_BLOB_CHUNK_BYTES=${cfg.chunkBytes} must be at most QPQ_MAX_MESSAGE_BYTES=${cfg.maxMessageBytes} ` +
        `minus ${MESSAGE_OVERHEAD_BYTES}`,
    );
  }
  for (const [name, ms] of [
    ['QPQ_BLOB_MAX_RETENTION', cfg.maxRetentionMs],
    ['QPQ_BLOB_UPLOAD_TTL', cfg.uploadTtlMs],
    ['QPQ_BLOB_IDLE_TIMEOUT', cfg.idleTimeoutMs],
    ['QPQ_GC_INTERVAL', cfg.gcIntervalMs],
  ] as const) {
    if (ms <= 0) problems.push(`${name} must be longer than 0`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return cfg;
}

/** Reads and validates the environment (one clear line per problem, as a ConfigError). */
export function readBlobConfig(source: NodeJS.ProcessEnv = process.env): BlobConfig {
  return envToConfig(readEnv(blobEnv, source));
}

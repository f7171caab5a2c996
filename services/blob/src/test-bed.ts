// Shared by this service's tests (not exported from the package).
import { openDatabase } from '@qpq/db';
import { readEnv, type Identity, type RpcClient } from '@qpq/runtime';
import { ServiceTestBed } from '@qpq/testnet';
import type { Kysely } from 'kysely';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { blobEnv, envToConfig, type BlobConfig, type StorageKind } from './config.js';
import type { BlobTables } from './db/schema.js';
import { BlobService } from './index.js';
import { BlobTestClient } from './test-client.js';

/** The running blob service and what its tests reach it with; filled in by the suite's before(). */
export interface BlobUnderTest {
  bed: ServiceTestBed;
  cfg: BlobConfig;
  service: BlobService;
  /** Streaming and unary calls with the gateway's certificate: identity metadata is honoured. */
  client: BlobTestClient;
  /** Unary calls with the gateway's certificate. */
  gateway: RpcClient;
  /** Calls with another internal certificate: identity metadata must be ignored. */
  stranger: BlobTestClient;
  /** The service's own schema, to look at what it stored. */
  db: Kysely<BlobTables>;
  /** The fs backend's directory (undefined for postgres). */
  dir: string | undefined;
  /** Moves the service's clock forward (expiries, upload ages). */
  advanceClock(ms: number): void;
  /** What is stored, counted: rows of each table and files of the fs backend. */
  stored(): Promise<StoredCounts>;
}

export interface StoredCounts {
  uploads: number;
  blobs: number;
  claims: number;
  uploadParts: number;
  blobParts: number;
  uploadFiles: number;
  blobFiles: number;
}

/**
 * The blob service with `storage` on a ServiceTestBed of its own, for the calling suite: registers the
 * suite's before() and after() hooks, and returns what they fill in.
 */
export function blobUnderTest(storage: StorageKind, env: Record<string, string> = {}): BlobUnderTest {
  const t: Partial<BlobUnderTest> = {};
  let skewMs = 0;
  let fsDir: string | undefined;
  before(
    async () => {
      const bed = await ServiceTestBed.create({ service: 'blob' });
      t.bed = bed; // at once: after() destroys the bed even when the service fails to start
      if (storage === 'fs') fsDir = await mkdtemp(join(tmpdir(), 'qpq-blob-fs-'));
      const cfg = envToConfig(
        readEnv(
          blobEnv,
          bed.env({
            QPQ_BLOB_STORAGE: storage,
            ...(fsDir ? { QPQ_BLOB_DIR: fsDir } : {}),
            // Short, so a test sees a stalled call ended (no test is otherwise idle this long).
            QPQ_BLOB_IDLE_TIMEOUT: '2s',
            ...env,
          }),
        ),
      );
      const started = await bed.startService(() => BlobService.create(cfg, { now: () => Date.now() + skewMs }));
      Object.assign(t, {
        cfg,
        service: started.service,
        gateway: started.gateway,
        dir: fsDir,
        client: new BlobTestClient(bed, started.service.grpcAddress),
        stranger: new BlobTestClient(bed, started.service.grpcAddress, 'delivery'),
        db: await openDatabase<BlobTables>({ url: bed.databaseUrl, schema: 'blob' }),
      });
    },
    { timeout: 120_000 },
  );
  after(
    async () => {
      t.client?.close();
      t.stranger?.close();
      await t.db?.destroy();
      await t.bed?.destroy(async () => {
        await t.service?.stop();
      });
      if (fsDir) await rm(fsDir, { recursive: true, force: true });
    },
    { timeout: 60_000 },
  );
  t.advanceClock = (ms) => {
    skewMs += ms;
  };
  t.stored = async () => {
    const db = t.db!;
    const count = async (table: keyof BlobTables) =>
      Number(
        (
          await db
            .selectFrom(table)
            .select((eb) => eb.fn.countAll<string>().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );
    const files = async (sub: string) => (fsDir ? (await readdir(join(fsDir, sub))).length : 0);
    return {
      uploads: await count('uploads'),
      blobs: await count('blobs'),
      claims: await count('claims'),
      uploadParts: await count('upload_parts'),
      blobParts: await count('blob_parts'),
      uploadFiles: await files('uploads'),
      blobFiles: await files('blobs'),
    };
  };
  // The tests run only after before() has filled in every field.
  return t as BlobUnderTest;
}

/** A caller as the gateway names it. */
export function newAccount(name = 'alice'): Identity {
  return { accountId: randomUUID(), deviceId: randomUUID(), username: `${name}-${randomUUID().slice(0, 8)}` };
}

/** Asserts that nothing of an upload or blob is stored: no rows beyond `baseline`, no parts, no files. */
export function assertNothingMoreStored(now: StoredCounts, baseline: StoredCounts, what: string): void {
  assert.deepEqual(now, baseline, `${what}: storage is as it was before`);
}

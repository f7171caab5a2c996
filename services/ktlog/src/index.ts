import { Bus, streams, type ConsumerWatch, type RunningConsumer } from '@qpq/bus';
import { ed25519RawPublicKey } from '@qpq/crypto';
import { databaseReachable, loadSigningKey, migrateToLatest, openDatabase, registerPoolMetrics } from '@qpq/db';
import { KeyTransparencyServiceService } from '@qpq/proto';
import { ServiceHost, type Routes } from '@qpq/runtime';
import type { Kysely } from 'kysely';
import { appendBatch } from './append-batch.js';
import { consumeInBatches } from './batch-consumer.js';
import type { KtlogConfig } from './config.js';
import type { AppContext } from './context.js';
import { migrations } from './db/migrations/index.js';
import type { KtlogTables } from './db/schema.js';
import { HeadWatch } from './head-watch.js';
import { KtlogMetrics } from './metrics.js';
import { getConsistencyProof } from './routes/get-consistency-proof.js';
import { getEntries } from './routes/get-entries.js';
import { getInclusionProof } from './routes/get-inclusion-proof.js';
import { getTreeHead } from './routes/get-tree-head.js';
import { lookupUser } from './routes/lookup-user.js';
import { ensureHead, newestHead } from './tree-heads.js';

export { envToConfig, ktlogEnv, readKtlogConfig, type KtlogConfig } from './config.js';
export type { AppContext } from './context.js';
// For tools that fill or measure a log without the consumer (the benchmark seeds a million entries).
export { appendEntries, entryRow, type NewEntry } from './log-append.js';
export { migrations as ktlogMigrations } from './db/migrations/index.js';
export type { KtlogTables } from './db/schema.js';

/** The Postgres schema this service owns. */
export const SCHEMA = 'ktlog';

/** The durable consumer of QPQ_DEVICES (adds and revokes) that this service's replicas share. */
export const DEVICE_EVENTS_CONSUMER = 'ktlog';

/** Parts a test (or an embedding process) may supply instead of having the service open its own. */
export interface KtlogOverrides {
  db?: Kysely<KtlogTables>;
  bus?: Bus;
  now?: () => number;
  /** How often the consumer gauges are read from JetStream (default 15 s); tests shorten it. */
  sampleIntervalMs?: number;
}

/**
 * The key-transparency log: every device identity key auth announces (DeviceEvents on QPQ_DEVICES,
 * durable consumer "ktlog") is appended once, in batches, to an RFC 9162 Merkle tree kept in
 * Postgres; each batch commits with a new signed tree head. Serves heads, inclusion and consistency
 * proofs, entries and per-user histories (KeyTransparencyService).
 */
export class KtlogService {
  private deviceEvents: RunningConsumer | undefined;
  private consumerGauges: ConsumerWatch | undefined;

  private constructor(
    readonly ctx: AppContext,
    readonly host: ServiceHost,
    private readonly owns: { db: boolean; bus: boolean },
    private readonly sampleIntervalMs: number | undefined,
  ) {}

  /** Connects to Postgres and NATS, migrates the `ktlog` schema, loads the key and signs a first head. */
  static async create(cfg: KtlogConfig, overrides: KtlogOverrides = {}): Promise<KtlogService> {
    const host = new ServiceHost('ktlog', cfg);
    let db = overrides.db;
    let bus = overrides.bus;
    try {
      db ??= await openDatabase<KtlogTables>({ url: cfg.databaseUrl, schema: SCHEMA });
      registerPoolMetrics(host.telemetry.meter, db);
      await migrateToLatest(db as Kysely<unknown>, SCHEMA, migrations);
      bus ??= await Bus.connect(cfg.natsUrl, 'ktlog', host.logger);
      const signingKey = await loadSigningKey(db, {
        name: 'tree-head',
        path: cfg.signingKeyPath,
        envName: 'QPQ_KTLOG_SIGNING_KEY',
      });
      const ctx: AppContext = {
        cfg,
        db,
        bus,
        logger: host.logger,
        metrics: new KtlogMetrics(host.telemetry),
        signingKey,
        logPublicKey: ed25519RawPublicKey(signingKey),
        heads: new HeadWatch(),
        now: overrides.now ?? Date.now,
      };
      await ensureHead(ctx, signingKey);
      // So that a freshly started replica reports the log's size and head age before any append.
      const head = await newestHead(ctx);
      if (head) ctx.metrics.observeHead(head);
      return new KtlogService(ctx, host, { db: !overrides.db, bus: !overrides.bus }, overrides.sampleIntervalMs);
    } catch (err) {
      if (bus && !overrides.bus) await bus.close();
      if (db && !overrides.db) await db.destroy();
      await host.stop();
      throw err;
    }
  }

  get grpcAddress(): string {
    return this.host.grpcAddress;
  }

  get httpAddress(): string {
    return this.host.httpAddress;
  }

  async start(): Promise<this> {
    const { ctx } = this;
    const routes: Routes<typeof KeyTransparencyServiceService> = {
      getTreeHead: getTreeHead(ctx),
      getInclusionProof: getInclusionProof(ctx),
      getConsistencyProof: getConsistencyProof(ctx),
      getEntries: getEntries(ctx),
      lookupUser: lookupUser(ctx),
    };
    this.host.grpc.addService('qpq.v1.KeyTransparencyService', KeyTransparencyServiceService, routes);
    // Either auth or this service may start first: whoever does creates the stream.
    await ctx.bus.ensureStream(streams.devices);
    this.deviceEvents = await consumeInBatches(
      ctx.bus,
      {
        stream: streams.devices.name,
        durable: DEVICE_EVENTS_CONSUMER,
        // Both subjects (add and revoke): every change of a device's key is logged.
        filterSubject: streams.devices.subjects[0],
        maxBatch: ctx.cfg.batchSize,
      },
      appendBatch(ctx),
      ctx.logger,
    );
    this.consumerGauges = ctx.bus.watchConsumers(
      this.host.telemetry.meter,
      [{ stream: streams.devices.name, durable: DEVICE_EVENTS_CONSUMER }],
      { intervalMs: this.sampleIntervalMs },
    );
    await this.host.start(async () => ctx.bus.isConnected() && (await databaseReachable(ctx.db as Kysely<unknown>)));
    return this;
  }

  /** Drains calls in flight, stops appending (the batch in hand commits first), closes NATS and the pool. */
  async stop(): Promise<void> {
    this.ctx.heads.close();
    await this.host.stop();
    await this.deviceEvents?.stop();
    await this.consumerGauges?.stop();
    if (this.owns.bus) await this.ctx.bus.close();
    if (this.owns.db) await this.ctx.db.destroy();
  }
}

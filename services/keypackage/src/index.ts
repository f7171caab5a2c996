import { Bus, streams, subjects, type ConsumerWatch, type RunningConsumer } from '@qpq/bus';
import { databaseReachable, migrateToLatest, openDatabase, PeriodicSample, registerPoolMetrics } from '@qpq/db';
import { KeyPackageServiceService } from '@qpq/proto';
import { ServiceHost, type Routes } from '@qpq/runtime';
import type { Kysely } from 'kysely';
import { ClaimRateLimiter } from './claim-rate-limiter.js';
import type { KeyPackageConfig } from './config.js';
import type { AppContext } from './context.js';
import { migrations } from './db/migrations/index.js';
import type { KeyPackageDatabase } from './db/schema.js';
import { deviceEventHandler } from './device-revocation.js';
import { keyPackageStock, type KeyPackageStock } from './key-package-stock.js';
import { KeyPackageMetrics } from './metrics.js';
import { claimKeyPackages } from './routes/claim-key-packages.js';
import { countKeyPackages } from './routes/count-key-packages.js';
import { uploadKeyPackages } from './routes/upload-key-packages.js';

export { envToConfig, keyPackageEnv, type KeyPackageConfig } from './config.js';
export type { AppContext } from './context.js';
export { deviceCredentialIdentity, REQUIRED_CIPHER_SUITE } from './key-package-check.js';

/** The Postgres schema this service owns. */
export const SCHEMA = 'keypackage';

/** Parts a test (or an embedding process) may supply instead of having the service open its own. */
export interface KeyPackageOverrides {
  db?: Kysely<KeyPackageDatabase>;
  bus?: Bus;
  /** How often sampled gauges (KeyPackage stock, consumer backlog) are read (default 15 s); tests shorten it. */
  sampleIntervalMs?: number;
}

/** The durable consumer of QPQ_DEVICES (revocations) that this service's replicas share. */
export const DEVICE_EVENTS_CONSUMER = 'keypackage';

/**
 * The keypackage service: devices upload MLS KeyPackages (checked for the project's cipher suite and
 * their own credential); others claim them, each one-time KeyPackage at most once. Revoked devices'
 * KeyPackages are withdrawn as auth's DeviceEvents arrive (durable consumer "keypackage").
 */
export class KeyPackageService {
  private deviceEvents: RunningConsumer | undefined;
  private consumerGauges: ConsumerWatch | undefined;

  private constructor(
    readonly ctx: AppContext,
    readonly host: ServiceHost,
    private readonly owns: { db: boolean; bus: boolean },
    private readonly stock: PeriodicSample<KeyPackageStock>,
    private readonly sampleIntervalMs: number | undefined,
  ) {}

  /** Connects to Postgres and NATS and brings the `keypackage` schema to the latest migration. */
  static async create(cfg: KeyPackageConfig, overrides: KeyPackageOverrides = {}): Promise<KeyPackageService> {
    const host = new ServiceHost('keypackage', cfg);
    let db = overrides.db;
    let bus = overrides.bus;
    try {
      db ??= await openDatabase<KeyPackageDatabase>({ url: cfg.databaseUrl, schema: SCHEMA });
      registerPoolMetrics(host.telemetry.meter, db);
      await migrateToLatest(db as Kysely<unknown>, SCHEMA, migrations);
      bus ??= await Bus.connect(cfg.natsUrl, 'keypackage', host.logger);
      const stockDb = db;
      const stock = new PeriodicSample(() => keyPackageStock(stockDb, cfg.lowWaterMark), {
        what: 'KeyPackage stock',
        intervalMs: overrides.sampleIntervalMs,
        logger: host.logger,
      });
      const ctx: AppContext = {
        cfg,
        db,
        bus,
        logger: host.logger,
        claimLimiter: new ClaimRateLimiter(cfg.claimRatePerMinute),
        metrics: new KeyPackageMetrics(host.telemetry, stock),
      };
      return new KeyPackageService(
        ctx,
        host,
        { db: !overrides.db, bus: !overrides.bus },
        stock,
        overrides.sampleIntervalMs,
      );
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
    const routes: Routes<typeof KeyPackageServiceService> = {
      uploadKeyPackages: uploadKeyPackages(ctx),
      claimKeyPackages: claimKeyPackages(ctx),
      countKeyPackages: countKeyPackages(ctx),
    };
    this.host.grpc.addService('qpq.v1.KeyPackageService', KeyPackageServiceService, routes);
    // Either auth or this service may start first: whoever does creates the stream.
    await ctx.bus.ensureStream(streams.devices);
    this.deviceEvents = await ctx.bus.consume(
      { stream: streams.devices.name, durable: DEVICE_EVENTS_CONSUMER, filterSubject: subjects.deviceEvent('revoke') },
      deviceEventHandler(ctx.db, ctx.logger),
    );
    this.consumerGauges = ctx.bus.watchConsumers(
      this.host.telemetry.meter,
      [{ stream: streams.devices.name, durable: DEVICE_EVENTS_CONSUMER }],
      { intervalMs: this.sampleIntervalMs },
    );
    this.stock.start();
    await this.host.start(async () => ctx.bus.isConnected() && (await databaseReachable(ctx.db as Kysely<unknown>)));
    return this;
  }

  /**
   * Drains calls in flight, stops consuming DeviceEvents (the one in hand finishes) and sampling the
   * gauges, then closes NATS (flushing low-water notices) and the database pool.
   */
  async stop(): Promise<void> {
    await this.host.stop();
    await this.deviceEvents?.stop();
    await this.consumerGauges?.stop();
    await this.stock.stop();
    if (this.owns.bus) await this.ctx.bus.close();
    if (this.owns.db) await this.ctx.db.destroy();
  }
}

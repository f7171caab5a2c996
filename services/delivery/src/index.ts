import { Bus } from '@qpq/bus';
import { ed25519RawPublicKey } from '@qpq/crypto';
import {
  databaseReachable,
  loadSigningKey,
  migrateToLatest,
  openDatabase,
  PeriodicSample,
  registerPoolMetrics,
} from '@qpq/db';
import { DeliveryServiceService } from '@qpq/proto';
import { ServiceHost } from '@qpq/runtime';
import type { Kysely } from 'kysely';
import type { KeyObject } from 'node:crypto';
import type { DeliveryConfig } from './config.js';
import type { AppContext } from './context.js';
import { migrations } from './db/migrations/index.js';
import type { DeliveryTables } from './db/schema.js';
import { ExpirySweeper } from './expiry.js';
import { mailboxBacklog, type MailboxBacklog } from './mailbox-backlog.js';
import { DeliveryMetrics } from './metrics.js';
import { ack } from './routes/ack.js';
import { enqueue } from './routes/enqueue.js';
import { fetch } from './routes/fetch.js';

export { readDeliveryConfig, envToConfig, deliveryEnv, type DeliveryConfig } from './config.js';

/** The Postgres schema this service owns. */
export const SCHEMA = 'delivery';

export interface DeliveryOverrides {
  /** Clock in ms since the epoch (acceptance time, expiry); tests use it to make messages old. */
  now?: () => number;
  /** Proof-signing key, instead of QPQ_DELIVERY_SIGNING_KEY or the one kept in the database. */
  signingKey?: KeyObject;
  /** How often the mailbox backlog gauges are read (default 15 s); tests shorten it. */
  sampleIntervalMs?: number;
}

/**
 * Per-device mailboxes: Enqueue stores a payload once and gives each recipient device its next seq,
 * Fetch hands a device its envelopes in seq order, Ack deletes what a device has acknowledged, and a
 * sweep deletes what expired. Pushes go out on NATS after commit.
 */
export class DeliveryService {
  private constructor(
    readonly ctx: AppContext,
    private readonly host: ServiceHost,
    readonly expiry: ExpirySweeper,
    private readonly backlog: PeriodicSample<MailboxBacklog>,
  ) {}

  /** Connects to Postgres (migrating the `delivery` schema) and NATS; `start()` then serves. */
  static async create(cfg: DeliveryConfig, overrides: DeliveryOverrides = {}): Promise<DeliveryService> {
    const db = await openDatabase<DeliveryTables>({ url: cfg.databaseUrl, schema: SCHEMA });
    let bus: Bus | undefined;
    try {
      await migrateToLatest(db as Kysely<unknown>, SCHEMA, migrations);
      const signingKey =
        overrides.signingKey ??
        (await loadSigningKey(db, {
          name: 'delivery-proof',
          path: cfg.signingKeyPath,
          envName: 'QPQ_DELIVERY_SIGNING_KEY',
        }));
      const host = new ServiceHost('delivery', cfg);
      bus = await Bus.connect(cfg.natsUrl, 'delivery', host.logger);
      registerPoolMetrics(host.telemetry.meter, db);
      const backlog = new PeriodicSample(() => mailboxBacklog(db), {
        what: 'mailbox backlog',
        intervalMs: overrides.sampleIntervalMs,
        logger: host.logger,
      });
      const now = overrides.now ?? Date.now;
      const ctx: AppContext = {
        cfg,
        db,
        bus,
        logger: host.logger,
        metrics: new DeliveryMetrics(host.telemetry, backlog, now),
        signingKey,
        now,
      };
      host.grpc.addService('qpq.v1.DeliveryService', DeliveryServiceService, {
        enqueue: enqueue(ctx),
        fetch: fetch(ctx),
        ack: ack(ctx),
      });
      return new DeliveryService(ctx, host, new ExpirySweeper(ctx), backlog);
    } catch (err) {
      if (bus) await bus.close();
      await db.destroy();
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

  /** Raw Ed25519 public key that delivery proofs are signed with. */
  get proofPublicKey(): Uint8Array {
    return ed25519RawPublicKey(this.ctx.signingKey);
  }

  async start(): Promise<this> {
    await this.host.start(() => this.ready());
    this.expiry.start();
    this.backlog.start();
    return this;
  }

  /** Ready only while both the database answers and NATS is connected. */
  async ready(): Promise<boolean> {
    return this.ctx.bus.isConnected() && (await databaseReachable(this.ctx.db as Kysely<unknown>));
  }

  /** Drains calls in flight, stops the sweep and the sampling, flushes NATS and closes the database pool. */
  async stop(): Promise<void> {
    await this.host.stop();
    await this.expiry.stop();
    await this.backlog.stop();
    await this.ctx.bus.close();
    await this.ctx.db.destroy();
  }
}

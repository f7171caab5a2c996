import { Bus, streams } from '@qpq/bus';
import { databaseReachable, migrateToLatest, openDatabase, registerPoolMetrics } from '@qpq/db';
import { AuthServiceService } from '@qpq/proto';
import { AuditLog, ServiceHost, type Routes } from '@qpq/runtime';
import type { Kysely } from 'kysely';
import { JetStreamAuditSink } from './audit-sink.js';
import type { AuthConfig } from './config.js';
import type { AppContext } from './context.js';
import { migrations } from './db/migrations/index.js';
import type { AuthDatabase } from './db/schema.js';
import { DeviceEventRelay } from './device-event-relay.js';
import { DevicePushes } from './device-pushes.js';
import { ExpirySweeper } from './expiry-sweeper.js';
import { AuthMetrics } from './metrics.js';
import { assertValidServerSetup, loadServerSetup } from './opaque.js';
import { finishLogin } from './routes/finish-login.js';
import { finishRegistration } from './routes/finish-registration.js';
import { listDevices } from './routes/list-devices.js';
import { logout } from './routes/logout.js';
import { resolveUser } from './routes/resolve-user.js';
import { revokeDevice } from './routes/revoke-device.js';
import { startLogin } from './routes/start-login.js';
import { startRegistration } from './routes/start-registration.js';
import { validateSession } from './routes/validate-session.js';

export { authEnv, envToConfig, type AuthConfig } from './config.js';
export type { AppContext } from './context.js';

/** The Postgres schema this service owns. */
export const SCHEMA = 'auth';

/** Parts a test (or an embedding process) may supply instead of having the service open its own. */
export interface AuthOverrides {
  db?: Kysely<AuthDatabase>;
  bus?: Bus;
}

/**
 * The auth service: OPAQUE registration and login, devices (at most QPQ_MAX_DEVICES per account,
 * revocable), session tokens, and the audit trail of all of it. Device changes leave a DeviceEvent
 * in an outbox table that the relay publishes to JetStream (QPQ_DEVICES).
 */
export class AuthService {
  private readonly sweeper: ExpirySweeper;

  private constructor(
    readonly ctx: AppContext,
    readonly host: ServiceHost,
    private readonly owns: { db: boolean; bus: boolean },
  ) {
    this.sweeper = new ExpirySweeper(ctx.db, ctx.logger);
  }

  /** Connects to Postgres and NATS, brings the `auth` schema to the latest migration, loads the OPAQUE setup. */
  static async create(cfg: AuthConfig, overrides: AuthOverrides = {}): Promise<AuthService> {
    if (cfg.opaqueServerSetup !== undefined) await assertValidServerSetup(cfg.opaqueServerSetup);
    const host = new ServiceHost('auth', cfg);
    let db = overrides.db;
    let bus = overrides.bus;
    try {
      db ??= await openDatabase<AuthDatabase>({ url: cfg.databaseUrl, schema: SCHEMA });
      registerPoolMetrics(host.telemetry.meter, db);
      await migrateToLatest(db as Kysely<unknown>, SCHEMA, migrations);
      const serverSetup = await loadServerSetup(db, cfg.opaqueServerSetup);
      bus ??= await Bus.connect(cfg.natsUrl, 'auth', host.logger);
      const audit = new AuditLog(host.logger, [new JetStreamAuditSink(bus, host.logger, 'auth')]);
      const ctx: AppContext = {
        cfg,
        db,
        bus,
        logger: host.logger,
        audit,
        serverSetup,
        deviceEvents: new DeviceEventRelay(db, bus, host.logger, cfg.deviceEventRelayIntervalMs),
        pushes: new DevicePushes(bus, host.logger),
        metrics: new AuthMetrics(host.telemetry),
      };
      return new AuthService(ctx, host, { db: !overrides.db, bus: !overrides.bus });
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
    await ctx.bus.ensureStream(streams.audit);
    await ctx.bus.ensureStream(streams.devices);
    const routes: Routes<typeof AuthServiceService> = {
      startRegistration: startRegistration(ctx),
      finishRegistration: finishRegistration(ctx),
      startLogin: startLogin(ctx),
      finishLogin: finishLogin(ctx),
      validateSession: validateSession(ctx),
      logout: logout(ctx),
      resolveUser: resolveUser(ctx),
      listDevices: listDevices(ctx),
      revokeDevice: revokeDevice(ctx),
    };
    this.host.grpc.addService('qpq.v1.AuthService', AuthServiceService, routes);
    await this.host.start(async () => ctx.bus.isConnected() && (await databaseReachable(ctx.db as Kysely<unknown>)));
    this.sweeper.start();
    // Also publishes what an earlier run left unpublished (a crash, or NATS away at the change).
    ctx.deviceEvents.start();
    return this;
  }

  /** Drains calls in flight, then closes NATS (flushing audit events) and the database pool. */
  async stop(): Promise<void> {
    await this.host.stop();
    await this.sweeper.stop();
    await this.ctx.deviceEvents.stop();
    if (this.owns.bus) await this.ctx.bus.close();
    if (this.owns.db) await this.ctx.db.destroy();
  }
}

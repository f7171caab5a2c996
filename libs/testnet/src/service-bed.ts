import { loadTlsFiles, RpcClient } from '@qpq/runtime';
import { connect, type NatsConnection } from 'nats';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeDevCerts, type DevCerts } from './certs.js';
import { startNats, type NatsHandle } from './nats.js';
import type { BackendName } from './network.js';
import { startPostgres, type PostgresHandle } from './postgres.js';

export interface ServiceTestBedOptions {
  /** The service under test: whose certificate its env names, and what its database is called. */
  service: BackendName;
  /** More holders to make certificates for; the service, the gateway and the stranger always get one. */
  certNames?: string[];
  /** Variables added to every `env()` of this bed, e.g. `{ QPQ_DOMAIN: 'example.test' }`. */
  env?: Record<string, string>;
}

/** Every call of a bed's clients has this deadline unless it names its own. */
const CLIENT_TIMEOUT_MS = 20_000;
/** Above anything a service test sends or gets back (the largest: a batch of KeyPackages). */
const CLIENT_MAX_MESSAGE_BYTES = 8 << 20;
const NATS_CONNECT_TIMEOUT_MS = 5_000;

/** A service as its test makes it: `create(cfg)` resolves to one not yet started. */
export interface StartableService<S> {
  start(): Promise<S>;
}

export interface RunningService {
  /** "host:port" of its gRPC listener. */
  readonly grpcAddress: string;
}

/** What a test talks to: the started service, two callers of it, and NATS. */
export interface ServiceUnderTest<S> {
  service: S;
  /** Calls with the gateway's certificate: the service honours its identity metadata. */
  gateway: RpcClient;
  /** Calls with another backend's certificate: the service must ignore its identity metadata. */
  stranger: RpcClient;
  nc: NatsConnection;
}

/**
 * What a test of one backend service needs around it, in its own process: real Postgres with a
 * fresh database, real NATS JetStream, dev certificates, the service's QPQ_* environment on
 * random ports, and clients that call the service as a given certificate holder. The test makes
 * the service's config from `env()` itself, since only it knows the service's class and config.
 *
 * @example
 * const bed = await ServiceTestBed.create({ service: 'auth' });
 * const { service, gateway, stranger, nc } = await bed.startService(() =>
 *   AuthService.create(envToConfig(readEnv(authEnv, bed.env()))),
 * );
 * // ... gateway.call(…, { identity }) is honoured, stranger's identity is not ...
 * await bed.destroy(() => service.stop());
 */
export class ServiceTestBed {
  /** RPC clients and NATS connections handed out, closed by destroy(). */
  private readonly closers: (() => unknown)[] = [];
  private destroying: Promise<void> | undefined;

  private constructor(
    readonly service: BackendName,
    readonly postgres: PostgresHandle,
    readonly nats: NatsHandle,
    readonly certs: DevCerts,
    /** URL of this bed's own database on `postgres`. */
    readonly databaseUrl: string,
    private readonly databaseName: string,
    private readonly dir: string,
    private readonly baseEnv: Record<string, string>,
  ) {}

  static async create(opts: ServiceTestBedOptions): Promise<ServiceTestBed> {
    const dir = await mkdtemp(join(tmpdir(), `qpq-${opts.service}-test-`));
    const certNames = [...new Set([opts.service, 'gateway', strangerOf(opts.service), ...(opts.certNames ?? [])])];
    const started = await Promise.allSettled([
      startPostgres(),
      startNats(),
      makeDevCerts(join(dir, 'certs'), certNames),
    ] as const);
    const [pgStarted, natsStarted, certsMade] = started;
    const cleanup = async () => {
      // Whichever server did start must be stopped again when the rest did not.
      await Promise.allSettled([
        pgStarted.status === 'fulfilled' ? pgStarted.value.stop() : undefined,
        natsStarted.status === 'fulfilled' ? natsStarted.value.stop() : undefined,
      ]);
      await rm(dir, { recursive: true, force: true });
    };
    if (pgStarted.status === 'rejected' || natsStarted.status === 'rejected' || certsMade.status === 'rejected') {
      await cleanup();
      throw started.find((r): r is PromiseRejectedResult => r.status === 'rejected')?.reason;
    }
    // A fresh database each time, so a shared server (QPQ_DATABASE_URL) never mixes runs.
    const databaseName = `${opts.service}_test_${randomBytes(4).toString('hex')}`;
    try {
      const databaseUrl = await pgStarted.value.createDatabase(databaseName);
      return new ServiceTestBed(
        opts.service,
        pgStarted.value,
        natsStarted.value,
        certsMade.value,
        databaseUrl,
        databaseName,
        dir,
        opts.env ?? {},
      );
    } catch (err) {
      await cleanup();
      throw err;
    }
  }

  /**
   * The environment the service reads (give it to `readEnv(<service>Env, …)`): listeners on
   * 127.0.0.1 port 0, its certificate, this bed's database and NATS, a short drain; then the
   * bed's `env` option, then `extra`, each winning over what comes before.
   */
  env(extra: Record<string, string> = {}): Record<string, string> {
    const tls = this.certs.files(this.service);
    return {
      QPQ_LISTEN: '127.0.0.1:0',
      QPQ_METRICS_LISTEN: '127.0.0.1:0',
      QPQ_TLS_CA: tls.ca,
      QPQ_TLS_CERT: tls.cert,
      QPQ_TLS_KEY: tls.key,
      QPQ_DATABASE_URL: this.databaseUrl,
      QPQ_NATS_URL: this.nats.url,
      QPQ_DRAIN_TIMEOUT: '2s',
      ...this.baseEnv,
      ...extra,
    };
  }

  /**
   * Connects to NATS, creates the service with `create` (from a config made of `env()`) and starts
   * it, then opens the gateway's and a stranger's client to it. Stopping the service is left to the
   * test (see destroy), since a test may restart it.
   */
  async startService<S extends RunningService>(
    create: () => Promise<StartableService<S>>,
  ): Promise<ServiceUnderTest<S>> {
    const nc = await this.natsClient();
    const service = await (await create()).start();
    return {
      service,
      gateway: this.clientAs('gateway', service.grpcAddress),
      stranger: this.clientAs(strangerOf(this.service), service.grpcAddress),
      nc,
    };
  }

  /** An RPC client to `address` over mutual TLS with `certName`'s certificate; destroy() closes it. */
  clientAs(certName: string, address: string): RpcClient {
    const client = new RpcClient({
      address,
      tls: loadTlsFiles(this.certs.files(certName)),
      defaultTimeoutMs: CLIENT_TIMEOUT_MS,
      maxMessageBytes: CLIENT_MAX_MESSAGE_BYTES,
    });
    this.closers.push(() => client.close());
    return client;
  }

  /** A connection to this bed's NATS; destroy() closes it. */
  async natsClient(): Promise<NatsConnection> {
    const nc = await connect({ servers: this.nats.url, timeout: NATS_CONNECT_TIMEOUT_MS });
    this.closers.push(() => nc.close());
    return nc;
  }

  /**
   * Closes every client handed out, then runs `stopService` (so the service drains with nobody
   * holding a channel open), then drops the database, stops NATS and Postgres and removes the
   * certificates. Every step runs even when one before it failed; the first failure is thrown.
   * Safe to call twice, and after a test stopped NATS itself.
   */
  destroy(stopService?: () => Promise<unknown>): Promise<void> {
    this.destroying ??= this.tearDown(stopService);
    return this.destroying;
  }

  private async tearDown(stopService: (() => Promise<unknown>) | undefined): Promise<void> {
    const steps: (() => unknown)[] = [
      () => Promise.all(this.closers.map(async (close) => close())),
      async () => stopService?.(),
      () => this.postgres.dropDatabase(this.databaseName),
      () => Promise.all([this.nats.stop(), this.postgres.stop()]),
      () => rm(this.dir, { recursive: true, force: true }),
    ];
    const failures: unknown[] = [];
    for (const step of steps) {
      try {
        await step();
      } catch (err) {
        failures.push(err);
      }
    }
    if (failures.length > 0) throw failures[0];
  }
}

/** Another backend's name: an internal caller that is not the gateway. */
function strangerOf(service: BackendName): BackendName {
  return service === 'delivery' ? 'auth' : 'delivery';
}

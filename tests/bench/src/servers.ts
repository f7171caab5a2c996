// The real infrastructure every scenario runs against: one Postgres and one NATS JetStream server
// (throwaway, from @qpq/testnet; or QPQ_DATABASE_URL / QPQ_NATS_URL when set) and the dev
// certificates the services and the benchmark's clients use for mutual TLS.
import { loadTlsFiles, RpcClient } from '@qpq/runtime';
import {
  makeDevCerts,
  startNats,
  startPostgres,
  type DevCerts,
  type NatsHandle,
  type PostgresHandle,
} from '@qpq/testnet';
import { connect, type NatsConnection } from 'nats';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Certificate holders: every backend and the gateway (the benchmark calls services as the gateway). */
const CERT_NAMES = ['gateway', 'auth', 'keypackage', 'delivery', 'ktlog'];
/** Every call of a benchmark client has this deadline unless it names its own. */
const CALL_TIMEOUT_MS = 30_000;
const MAX_MESSAGE_BYTES = 8 << 20;
const NATS_CONNECT_TIMEOUT_MS = 5_000;

export interface Servers {
  readonly postgres: PostgresHandle;
  readonly nats: NatsHandle;
  readonly certs: DevCerts;
  /**
   * A fresh, empty database (dropped first if a previous run left it); returns its URL. On a server
   * given by QPQ_DATABASE_URL it is dropped again by stop(); a throwaway server goes as a whole.
   */
  freshDatabase(name: string): Promise<string>;
  /** A service's environment on a fresh database `database`: its certificate, the URLs, a short drain. */
  serviceEnv(service: string, database: string): Promise<Record<string, string>>;
  /** An RPC client to `address` with `certName`'s certificate; closed when the servers stop. */
  client(certName: string, address: string): RpcClient;
  /** A NATS connection; closed when the servers stop. */
  natsConnection(): Promise<NatsConnection>;
  /** Closes clients, then stops NATS and Postgres and removes the certificates. */
  stop(): Promise<void>;
}

export async function startServers(): Promise<Servers> {
  const dir = await mkdtemp(join(tmpdir(), 'qpq-bench-'));
  const [pg, nats, certs] = await Promise.allSettled([
    startPostgres(),
    startNats(),
    makeDevCerts(join(dir, 'certs'), CERT_NAMES),
  ] as const);
  if (pg.status === 'rejected' || nats.status === 'rejected' || certs.status === 'rejected') {
    // Whichever server did start must not outlive the failure.
    await Promise.allSettled([
      pg.status === 'fulfilled' ? pg.value.stop() : undefined,
      nats.status === 'fulfilled' ? nats.value.stop() : undefined,
    ]);
    await rm(dir, { recursive: true, force: true });
    throw [pg, nats, certs].find((r): r is PromiseRejectedResult => r.status === 'rejected')?.reason;
  }
  const closers: (() => unknown)[] = [];
  const databases = new Set<string>();
  let stopping: Promise<void> | undefined;
  const freshDatabase = async (name: string) => {
    databases.add(name);
    await pg.value.dropDatabase(name);
    return pg.value.createDatabase(name);
  };
  return {
    postgres: pg.value,
    nats: nats.value,
    certs: certs.value,
    freshDatabase,
    async serviceEnv(service, database) {
      const tls = certs.value.files(service);
      return {
        QPQ_TLS_CA: tls.ca,
        QPQ_TLS_CERT: tls.cert,
        QPQ_TLS_KEY: tls.key,
        QPQ_DATABASE_URL: await freshDatabase(database),
        QPQ_NATS_URL: nats.value.url,
        QPQ_DRAIN_TIMEOUT: '2s',
      };
    },
    client(certName, address) {
      const client = new RpcClient({
        address,
        tls: loadTlsFiles(certs.value.files(certName)),
        defaultTimeoutMs: CALL_TIMEOUT_MS,
        maxMessageBytes: MAX_MESSAGE_BYTES,
      });
      closers.push(() => client.close());
      return client;
    },
    async natsConnection() {
      const nc = await connect({ servers: nats.value.url, timeout: NATS_CONNECT_TIMEOUT_MS });
      closers.push(() => nc.close());
      return nc;
    },
    stop: () =>
      (stopping ??= (async () => {
        await Promise.allSettled(closers.map(async (close) => close()));
        if (pg.value.external) await Promise.allSettled([...databases].map((name) => pg.value.dropDatabase(name)));
        const stopped = await Promise.allSettled([nats.value.stop(), pg.value.stop()]);
        await rm(dir, { recursive: true, force: true });
        const failed = stopped.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed) throw failed.reason;
      })()),
  };
}

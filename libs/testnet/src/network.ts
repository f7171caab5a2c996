import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeDevCerts, type DevCerts } from './certs.js';
import { startNats, type NatsHandle } from './nats.js';
import { assertPortsFree, FIXED_PORTS, LOOPBACK, PortAllocator, type PortNeed } from './ports.js';
import { startPostgres, type PostgresHandle } from './postgres.js';
import {
  appendLine,
  isReady,
  pollUntil,
  spawnOwned,
  stopProcess,
  tailFile,
  waitForExit,
  type OwnedProcess,
} from './processes.js';

export type BackendName = 'auth' | 'keypackage' | 'delivery' | 'ktlog' | 'blob';
/** A process of the network: a backend by its name, a gateway as `gateway-<index>`. */
export type ServiceName = BackendName | `gateway-${number}`;

export interface TestNetworkOptions {
  /** Where Postgres data, the NATS store, certificates and (by default) logs live. Default: a temp dir. */
  dir?: string;
  /** How many gateway processes (default 1). */
  gateways?: number;
  /** 'random' (default): free ports picked up front. 'fixed': the laptop ports of FIXED_PORTS. */
  ports?: 'random' | 'fixed';
  /** One log file per process. Default: `<dir>/logs`. */
  logDir?: string;
  /** Extra environment for every service (wins over the network's own values). */
  env?: Record<string, string>;
  /** Extra environment for one service, e.g. `{ delivery: { QPQ_MAX_MESSAGE_BYTES: '4096' } }`. */
  serviceEnv?: Partial<Record<ServiceName, Record<string, string>>>;
  /** Keep Postgres data and the NATS store across runs (npm run dev). Default false. */
  persistent?: boolean;
  /** Aborts start-up (e.g. Ctrl-C while booting); whatever was started is stopped again. */
  signal?: AbortSignal;
  /** Called when a service exits without being asked to (not for stopService/killService/destroy). */
  onServiceExit?: (name: ServiceName, code: number | null, signal: NodeJS.Signals | null) => void;
  /**
   * The command that runs one service, run from the repo root. Default:
   * `node --import tsx services/<pkg>/src/bin.ts` (defaultServiceCommand). Overridden to test the
   * orchestrator itself, or to give one service V8 flags.
   */
  serviceCommand?: (pkg: BackendName | 'gateway') => { command: string; args: string[] };
}

/** How a service is started unless TestNetworkOptions.serviceCommand says otherwise. */
export const defaultServiceCommand = (pkg: BackendName | 'gateway') => ({
  command: process.execPath,
  args: ['--import', 'tsx', `services/${pkg}/src/bin.ts`],
});

interface ServiceSpec {
  name: ServiceName;
  /** services/<pkg>/src/bin.ts */
  pkg: BackendName | 'gateway';
  /** host:port of gRPC (TCP), or of QUIC (UDP) for a gateway. */
  listen: string;
  /** host:port of /healthz, /readyz, /metrics. */
  metricsListen: string;
  logFile: string;
  env: Record<string, string>;
}

interface ServiceState {
  spec: ServiceSpec;
  proc: OwnedProcess | undefined;
  /** Set while we stop or kill it ourselves, so the exit is not reported as unexpected. */
  expectingExit: boolean;
}

const BACKENDS: readonly BackendName[] = ['auth', 'keypackage', 'delivery', 'ktlog', 'blob'];
const CERT_NAMES = ['gateway', 'auth', 'keypackage', 'delivery', 'ktlog', 'blob', 'edge'];
const READY_TIMEOUT_MS = 60_000;
/** Services drain for at most this long in a test network, so destroy() fits its 20 s. */
const DEFAULT_DRAIN_TIMEOUT = '3s';
/** How long stopService waits after SIGTERM before SIGKILL. */
const STOP_GRACE_MS = 10_000;
/** Within destroy(): per tier (gateways, then backends) before SIGKILL. */
const DESTROY_GRACE_MS = 4_500;
const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * The whole qpq system on one machine: real Postgres, real NATS JetStream, dev certificates, and
 * every service as its own OS process (`node --import tsx services/<name>/src/bin.ts`). Used by
 * `npm run dev`, the integration tests and the benchmark.
 *
 * @example
 * const net = await TestNetwork.create();
 * const [gateway] = net.gatewayAddresses; // "127.0.0.1:<udp port>", trust net.caPath
 * await net.destroy();
 */
export class TestNetwork {
  private readonly services = new Map<ServiceName, ServiceState>();
  private destroying: Promise<void> | undefined;

  private constructor(
    readonly dir: string,
    readonly logDir: string,
    readonly postgres: PostgresHandle,
    readonly nats: NatsHandle,
    readonly certs: DevCerts,
    /** URL of the one database every service uses (each in its own schema). */
    readonly databaseUrl: string,
    private readonly databaseName: string,
    private readonly ownsDir: boolean,
    private readonly persistent: boolean,
    private readonly onServiceExit: TestNetworkOptions['onServiceExit'],
    private readonly serviceCommand: NonNullable<TestNetworkOptions['serviceCommand']>,
  ) {}

  static async create(opts: TestNetworkOptions = {}): Promise<TestNetwork> {
    const gateways = opts.gateways ?? 1;
    if (!Number.isInteger(gateways) || gateways < 1) throw new Error(`gateways must be a positive integer`);
    const fixed = opts.ports === 'fixed';
    const persistent = opts.persistent ?? false;
    if (fixed) await assertPortsFree(fixedPortNeeds(gateways));

    const ownsDir = opts.dir === undefined;
    const dir = opts.dir ? resolve(opts.dir) : await mkdtemp(join(tmpdir(), 'qpq-net-'));
    await mkdir(dir, { recursive: true });
    // Postgres runs as user `postgres` when we are root and must be able to enter this folder.
    if (ownsDir) await chmod(dir, 0o711);
    const logDir = resolve(opts.logDir ?? join(dir, 'logs'));
    await mkdir(logDir, { recursive: true });

    const cleanup: (() => Promise<void>)[] = [];
    try {
      opts.signal?.throwIfAborted();
      const [pgStarted, natsStarted, certsMade] = await Promise.allSettled([
        startPostgres({
          dir: join(dir, 'postgres'),
          port: fixed ? FIXED_PORTS.postgres : 0,
          persistent,
          logFile: join(logDir, 'postgres.log'),
        }),
        startNats({ dir: join(dir, 'nats'), port: fixed ? FIXED_PORTS.nats : 0, logFile: join(logDir, 'nats.log') }),
        makeDevCerts(join(dir, 'certs'), CERT_NAMES),
      ]);
      // Whichever of the two servers did start must be stopped again if the other did not.
      if (pgStarted.status === 'fulfilled') cleanup.push(() => pgStarted.value.stop());
      if (natsStarted.status === 'fulfilled') cleanup.push(() => natsStarted.value.stop());
      for (const r of [pgStarted, natsStarted, certsMade]) if (r.status === 'rejected') throw r.reason;
      const postgres = (pgStarted as PromiseFulfilledResult<PostgresHandle>).value;
      const nats = (natsStarted as PromiseFulfilledResult<NatsHandle>).value;
      const certs = (certsMade as PromiseFulfilledResult<DevCerts>).value;
      // A fresh database per network on a shared server (QPQ_DATABASE_URL), so tests never see
      // each other's rows; our own throwaway cluster simply uses `qpq`.
      const databaseName = postgres.external && !persistent ? `qpq_test_${randomBytes(6).toString('hex')}` : 'qpq';
      const databaseUrl = await postgres.createDatabase(databaseName);

      const net = new TestNetwork(
        dir,
        logDir,
        postgres,
        nats,
        certs,
        databaseUrl,
        databaseName,
        ownsDir,
        persistent,
        opts.onServiceExit,
        opts.serviceCommand ?? defaultServiceCommand,
      );
      cleanup.length = 0;
      try {
        await net.planServices(gateways, fixed, opts);
        // Backends first (in parallel: each start is mostly tsx compiling), then the gateways that call them.
        await Promise.all(BACKENDS.map((name) => net.startService(name, opts.signal)));
        await Promise.all(net.gatewayNames().map((name) => net.startService(name, opts.signal)));
      } catch (err) {
        await net.destroy();
        throw err;
      }
      return net;
    } catch (err) {
      await Promise.allSettled(cleanup.map((stop) => stop()));
      if (!persistent) await removeData(dir, ownsDir, logDir);
      throw err;
    }
  }

  /** "127.0.0.1:<port>" of each gateway's QUIC (UDP) listener, in order. */
  get gatewayAddresses(): string[] {
    return this.gatewayNames().map((name) => this.spec(name).listen);
  }

  /** The internal CA: trust it to reach a gateway (`serverName` "localhost") or a service. */
  get caPath(): string {
    return this.certs.caPath;
  }

  /** Every process of the network, in start order. */
  serviceNames(): ServiceName[] {
    return [...this.services.keys()];
  }

  /** Where a service listens: gRPC (or QUIC for a gateway) and HTTP probes/metrics, both "host:port". */
  addressOf(name: ServiceName): { listen: string; metrics: string } {
    const spec = this.spec(name);
    return { listen: spec.listen, metrics: spec.metricsListen };
  }

  /** The log file of one service. */
  logFile(name: ServiceName): string {
    return this.spec(name).logFile;
  }

  /** Every log file: one per service, plus Postgres and NATS when we started them. */
  logFiles(): string[] {
    const files = [...this.services.values()].map((s) => s.spec.logFile);
    if (!this.postgres.external) files.push(join(this.logDir, 'postgres.log'));
    if (!this.nats.external) files.push(join(this.logDir, 'nats.log'));
    return files;
  }

  /** Whether the service's process is running. */
  isRunning(name: ServiceName): boolean {
    const proc = this.state(name).proc;
    return proc !== undefined && !proc.hasExited();
  }

  /** The pid of the service's running process, or undefined when it is not running. */
  pid(name: ServiceName): number | undefined {
    const proc = this.state(name).proc;
    return proc && !proc.hasExited() ? proc.pid : undefined;
  }

  /** Starts a stopped service again with the same ports and environment; resolves once /readyz says 200. */
  async startService(name: ServiceName, signal?: AbortSignal): Promise<void> {
    if (this.destroying) throw new Error('the network is being destroyed');
    const state = this.state(name);
    if (state.proc && !state.proc.hasExited()) throw new Error(`${name} is already running`);
    const { spec } = state;
    appendLine(spec.logFile, `--- testnet: starting ${name} at ${new Date().toISOString()} ---`);
    const env: NodeJS.ProcessEnv = { ...process.env, ...spec.env };
    // A service must not think it runs inside `node --test` when a test started the network.
    delete env.NODE_TEST_CONTEXT;
    const { command, args } = this.serviceCommand(spec.pkg);
    const proc = spawnOwned(command, args, {
      cwd: REPO_ROOT,
      env,
      logFile: spec.logFile,
    });
    state.proc = proc;
    state.expectingExit = false;
    void proc.exited.then(({ code, signal: sig }) => {
      if (state.proc === proc && !state.expectingExit && !this.destroying) this.onServiceExit?.(name, code, sig);
    });
    const url = `http://${spec.metricsListen}/readyz`;
    await pollUntil(
      async () => {
        if (proc.hasExited()) {
          const { code, signal: sig } = await proc.exited;
          throw new Error(
            `${name} exited during start-up (${sig ?? `exit ${code}`}); last lines of ${spec.logFile}:\n` +
              tailFile(spec.logFile),
          );
        }
        return isReady(url);
      },
      {
        timeoutMs: READY_TIMEOUT_MS,
        intervalMs: 150,
        signal,
        onTimeout: () =>
          new Error(
            `${name} was not ready within ${READY_TIMEOUT_MS / 1000} s (GET ${url}); last lines of ${spec.logFile}:\n` +
              tailFile(spec.logFile),
          ),
      },
    );
  }

  /** SIGTERM (the service drains), then waits for it to exit (SIGKILL after 10 s). */
  async stopService(name: ServiceName): Promise<void> {
    await this.halt(name, 'SIGTERM', STOP_GRACE_MS);
  }

  /** SIGKILL: the service dies without draining, as in a crash. */
  async killService(name: ServiceName): Promise<void> {
    await this.halt(name, 'SIGKILL', 5_000);
  }

  /**
   * Stops every service (gateways first, then the backends they call), then NATS and Postgres;
   * within 20 s. Idempotent. A throwaway network's data is removed; its logs are kept.
   */
  destroy(): Promise<void> {
    return (this.destroying ??= this.teardown());
  }

  private async teardown(): Promise<void> {
    const errors: unknown[] = [];
    const collect = (results: PromiseSettledResult<unknown>[]) => {
      for (const r of results) if (r.status === 'rejected') errors.push(r.reason);
    };
    collect(await Promise.allSettled(this.gatewayNames().map((n) => this.halt(n, 'SIGTERM', DESTROY_GRACE_MS))));
    collect(await Promise.allSettled(BACKENDS.map((n) => this.halt(n, 'SIGTERM', DESTROY_GRACE_MS))));
    if (this.postgres.external && !this.persistent && this.databaseName !== 'qpq') {
      collect(await Promise.allSettled([withTimeout(this.postgres.dropDatabase(this.databaseName), 3_000)]));
    }
    collect(await Promise.allSettled([this.nats.stop(), this.postgres.stop()]));
    if (!this.persistent) await removeData(this.dir, this.ownsDir, this.logDir);
    if (errors.length > 0) throw new AggregateError(errors, 'testnet: some processes did not stop cleanly');
  }

  private async halt(name: ServiceName, signal: NodeJS.Signals, graceMs: number): Promise<void> {
    const state = this.state(name);
    const proc = state.proc;
    if (!proc || proc.hasExited()) return;
    state.expectingExit = true;
    await stopProcess(proc, signal, graceMs);
    if (!(await waitForExit(proc, 1_000))) throw new Error(`${name} (pid ${proc.pid}) did not exit`);
  }

  private async planServices(gateways: number, fixed: boolean, opts: TestNetworkOptions): Promise<void> {
    const ports = new PortAllocator();
    const common: Record<string, string> = {
      QPQ_DOMAIN: 'localhost',
      QPQ_NATS_URL: this.nats.url,
      QPQ_DRAIN_TIMEOUT: DEFAULT_DRAIN_TIMEOUT,
      QPQ_TLS_CA: this.certs.caPath,
    };
    const hostPort = (port: number) => `${LOOPBACK}:${port}`;
    const backendAddr: Partial<Record<BackendName, string>> = {};
    for (const name of BACKENDS) {
      const grpc = fixed ? FIXED_PORTS[name].grpc : await ports.tcp();
      const http = fixed ? FIXED_PORTS[name].http : await ports.tcp();
      const tls = this.certs.files(name);
      backendAddr[name] = hostPort(grpc);
      this.addService(
        {
          name,
          pkg: name,
          listen: hostPort(grpc),
          metricsListen: hostPort(http),
          logFile: join(this.logDir, `${name}.log`),
          env: {
            ...common,
            QPQ_LISTEN: hostPort(grpc),
            QPQ_METRICS_LISTEN: hostPort(http),
            QPQ_DATABASE_URL: this.databaseUrl,
            QPQ_TLS_CERT: tls.cert,
            QPQ_TLS_KEY: tls.key,
          },
        },
        opts,
      );
    }
    const internal = this.certs.files('gateway');
    const edge = this.certs.files('edge');
    for (let i = 0; i < gateways; i++) {
      const name: ServiceName = `gateway-${i}`;
      const udp = fixed ? FIXED_PORTS.gatewayUdp + i : await ports.udp();
      const http = fixed ? (i === 0 ? FIXED_PORTS.gatewayHttp : FIXED_PORTS.extraGatewayHttp + i) : await ports.tcp();
      this.addService(
        {
          name,
          pkg: 'gateway',
          listen: hostPort(udp),
          metricsListen: hostPort(http),
          logFile: join(this.logDir, `${name}.log`),
          env: {
            ...common,
            QPQ_LISTEN: hostPort(udp),
            QPQ_METRICS_LISTEN: hostPort(http),
            QPQ_TLS_CERT: internal.cert,
            QPQ_TLS_KEY: internal.key,
            QPQ_EDGE_TLS_CERT: edge.cert,
            QPQ_EDGE_TLS_KEY: edge.key,
            QPQ_AUTH_ADDR: backendAddr.auth ?? '',
            QPQ_KEYPACKAGE_ADDR: backendAddr.keypackage ?? '',
            QPQ_DELIVERY_ADDR: backendAddr.delivery ?? '',
            QPQ_KTLOG_ADDR: backendAddr.ktlog ?? '',
            QPQ_BLOB_ADDR: backendAddr.blob ?? '',
          },
        },
        opts,
      );
    }
  }

  private addService(spec: ServiceSpec, opts: TestNetworkOptions): void {
    spec.env = { ...spec.env, ...opts.env, ...opts.serviceEnv?.[spec.name] };
    this.services.set(spec.name, { spec, proc: undefined, expectingExit: false });
  }

  private gatewayNames(): ServiceName[] {
    return [...this.services.keys()].filter((n) => n.startsWith('gateway-'));
  }

  private state(name: ServiceName): ServiceState {
    const state = this.services.get(name);
    if (!state) throw new Error(`no service named ${name} (have: ${[...this.services.keys()].join(', ')})`);
    return state;
  }

  private spec(name: ServiceName): ServiceSpec {
    return this.state(name).spec;
  }
}

/** Every fixed port a network with `gateways` gateways needs, skipping servers given by URL. */
export function fixedPortNeeds(gateways: number): PortNeed[] {
  const needs: PortNeed[] = [];
  if (!process.env.QPQ_DATABASE_URL) needs.push({ port: FIXED_PORTS.postgres, protocol: 'tcp', purpose: 'Postgres' });
  if (!process.env.QPQ_NATS_URL) needs.push({ port: FIXED_PORTS.nats, protocol: 'tcp', purpose: 'NATS' });
  for (const name of BACKENDS) {
    needs.push({ port: FIXED_PORTS[name].grpc, protocol: 'tcp', purpose: `${name} gRPC` });
    needs.push({ port: FIXED_PORTS[name].http, protocol: 'tcp', purpose: `${name} HTTP probes` });
  }
  for (let i = 0; i < gateways; i++) {
    needs.push({ port: FIXED_PORTS.gatewayUdp + i, protocol: 'udp', purpose: `gateway-${i} QUIC` });
    const http = i === 0 ? FIXED_PORTS.gatewayHttp : FIXED_PORTS.extraGatewayHttp + i;
    needs.push({ port: http, protocol: 'tcp', purpose: `gateway-${i} HTTP probes` });
  }
  return needs;
}

/**
 * Removes what a throwaway network stored but keeps its logs (a failed test points at them): the
 * whole temp dir apart from logs/, or in a caller's dir the NATS store (Postgres removes its own).
 */
/**
 * Removes what the network stored: all of a folder it made, except the logs kept inside it (read
 * after a failed test); only the NATS store of a folder it was given.
 */
async function removeData(dir: string, ownsDir: boolean, logDir: string): Promise<void> {
  if (!ownsDir) {
    await rm(join(dir, 'nats'), { recursive: true, force: true });
    return;
  }
  if (relative(dir, logDir).startsWith('..')) {
    await rm(dir, { recursive: true, force: true });
    return;
  }
  const entries = await readdir(dir).catch(() => [] as string[]);
  await Promise.allSettled(
    entries.filter((e) => e !== 'logs').map((e) => rm(join(dir, e), { recursive: true, force: true })),
  );
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

import { Bus } from '@qpq/bus';
import { createLogger, loadTlsFiles, RpcClient, startProbeServer, Telemetry, type Logger } from '@qpq/runtime';
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { GatewayConfig } from './config.js';
import type { AppContext } from './context.js';
import { dispatcher } from './dispatch.js';
import { EdgeServer } from './edge-server.js';
import { GatewayMetrics } from './metrics.js';
import type { Backend } from './routes.js';
import { SessionCache } from './session-cache.js';

export { envToConfig, gatewayEnv, type GatewayConfig } from './config.js';
export { routes, routeOf, type Route } from './routes.js';

/** Parts a test (or an embedding process) may supply instead of having the gateway open its own. */
export interface GatewayOverrides {
  bus?: Bus;
}

/**
 * The edge: clients speak QUIC to it (one long-lived stream of frames per session), it checks
 * session tokens with auth, forwards requests to auth, keypackage, delivery, ktlog and blob over
 * mutual-TLS gRPC, streams file bytes between file streams (QUIC streams of their own) and the blob
 * service, and pushes each attached device's NATS pushes down its connection. It holds no durable state.
 *
 * Not a gRPC server, so it uses the runtime's parts (logger, telemetry, probe server) rather than
 * ServiceHost, which always serves gRPC.
 */
export class GatewayService {
  quicAddress = '';
  httpAddress = '';
  private http: Server | undefined;
  private draining = false;
  private stopping: Promise<void> | undefined;

  private constructor(
    readonly ctx: AppContext,
    private readonly edge: EdgeServer,
    private readonly ownsBus: boolean,
  ) {}

  /** Loads certificates and connects to NATS; `start()` then listens. */
  static async create(cfg: GatewayConfig, overrides: GatewayOverrides = {}): Promise<GatewayService> {
    const logger = createLogger('gateway');
    const tls = loadTlsFiles(cfg.tls);
    const edgeTls = { cert: readFileSync(cfg.edgeTls.cert, 'utf8'), key: readFileSync(cfg.edgeTls.key, 'utf8') };
    const bus = overrides.bus ?? (await Bus.connect(cfg.natsUrl, 'gateway', logger));
    const telemetry = Telemetry.start('gateway');
    const backend = (name: Backend) =>
      new RpcClient({
        address: cfg.backends[name],
        tls,
        defaultTimeoutMs: cfg.rpcTimeoutMs,
        // A backend's answer must fit in one frame to the client anyway.
        maxMessageBytes: Math.max(cfg.maxMessageBytes, cfg.maxFrameBytes),
        telemetry,
      });
    const backends = {
      auth: backend('auth'),
      keypackage: backend('keypackage'),
      delivery: backend('delivery'),
      ktlog: backend('ktlog'),
      blob: backend('blob'),
    };
    const ctx: AppContext = {
      cfg,
      logger,
      telemetry,
      metrics: new GatewayMetrics(telemetry),
      backends,
      bus,
      sessions: new SessionCache(backends.auth, cfg.sessionCacheTtlMs),
    };
    const edge = new EdgeServer(ctx, dispatcher(ctx), edgeTls);
    return new GatewayService(ctx, edge, !overrides.bus);
  }

  get logger(): Logger {
    return this.ctx.logger;
  }

  /** Client connections open now. */
  get connectionCount(): number {
    return this.edge.size;
  }

  /** Listens for clients (QUIC) and for probes (HTTP: /healthz, /readyz, /metrics). */
  async start(): Promise<this> {
    const { cfg, logger, telemetry } = this.ctx;
    this.quicAddress = await this.edge.listen(cfg.listen);
    const probes = await startProbeServer(cfg.metricsListen, { ready: () => this.ready() }, telemetry);
    this.http = probes.server;
    this.httpAddress = probes.address;
    logger.info({ quic: this.quicAddress, http: this.httpAddress, backends: cfg.backends }, 'gateway listening');
    return this;
  }

  /** Ready: listening for clients, NATS connected (pushes flow), not draining. */
  ready(): boolean {
    return !this.draining && this.edge.listening && this.ctx.bus.isConnected();
  }

  /**
   * SIGTERM drain within QPQ_DRAIN_TIMEOUT: /readyz turns 503, new connections are refused, each
   * connection answers what it has in flight and is closed with SHUTTING_DOWN (clients reconnect,
   * to another gateway behind the load balancer); then NATS, the backend channels and probes close.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      const { cfg, logger, backends, bus, telemetry } = this.ctx;
      this.draining = true;
      const open = this.edge.size;
      await this.edge.drain(Date.now() + cfg.drainTimeoutMs);
      await this.edge.stop();
      logger.info({ connections: open }, 'gateway drained');
      for (const client of Object.values(backends)) client.close();
      if (this.ownsBus) await bus.close();
      const http = this.http;
      if (http) {
        await new Promise<void>((resolve) => http.close(() => resolve()));
        http.closeAllConnections();
      }
      await telemetry.shutdown();
    })();
    return this.stopping;
  }
}

import type { Server } from 'node:http';
import type { Logger } from 'pino';
import { createLogger } from './logger.js';
import { GrpcServer } from './grpc-server.js';
import { startProbeServer } from './http.js';
import type { BaseServiceConfig } from './service-config.js';
import { Telemetry } from './telemetry.js';
import { loadTlsFiles, type TlsFiles } from './tls.js';

/**
 * What every backend service runs on: logger, telemetry, a gRPC server with health, and the HTTP
 * probe/metrics server. The service adds its routes, starts the host, and stops it to drain.
 */
export class ServiceHost {
  readonly logger: Logger;
  readonly telemetry: Telemetry;
  readonly tls: TlsFiles;
  readonly grpc: GrpcServer;
  grpcAddress = '';
  httpAddress = '';
  private http: Server | undefined;
  private draining = false;

  constructor(
    readonly name: string,
    private readonly cfg: BaseServiceConfig,
  ) {
    this.logger = createLogger(name);
    this.telemetry = Telemetry.start(name);
    this.tls = loadTlsFiles(cfg.tls);
    this.grpc = new GrpcServer({
      service: name,
      tls: this.tls,
      logger: this.logger,
      telemetry: this.telemetry,
      maxMessageBytes: cfg.maxMessageBytes,
    });
  }

  /** Starts serving; `ready` is polled by /readyz (and is false while draining). */
  async start(ready: () => Promise<boolean> | boolean): Promise<void> {
    this.grpcAddress = await this.grpc.listen(this.cfg.listen);
    const probes = await startProbeServer(
      this.cfg.metricsListen,
      { ready: async () => !this.draining && (await ready()) },
      this.telemetry,
    );
    this.http = probes.server;
    this.httpAddress = probes.address;
    this.grpc.setServing(true);
    this.logger.info({ grpc: this.grpcAddress, http: this.httpAddress }, `${this.name} listening`);
  }

  /** Drains: /readyz and gRPC health turn NOT_SERVING, calls in flight finish (up to the drain timeout). */
  async stop(): Promise<void> {
    this.draining = true;
    await this.grpc.drain(this.cfg.drainTimeoutMs);
    await new Promise<void>((resolve) => (this.http ? this.http.close(() => resolve()) : resolve()));
    this.http?.closeAllConnections();
    await this.telemetry.shutdown();
  }
}

import type { Bus } from '@qpq/bus';
import type { Logger, RpcClient, Telemetry } from '@qpq/runtime';
import type { GatewayConfig } from './config.js';
import type { GatewayMetrics } from './metrics.js';
import type { Backend } from './routes.js';
import type { SessionCache } from './session-cache.js';

/** What every connection and handler of the gateway works with. The gateway keeps no durable state. */
export interface AppContext {
  cfg: GatewayConfig;
  logger: Logger;
  telemetry: Telemetry;
  metrics: GatewayMetrics;
  /** One mutual-TLS gRPC channel per backend, shared by every connection. */
  backends: Record<Backend, RpcClient>;
  bus: Bus;
  sessions: SessionCache;
}

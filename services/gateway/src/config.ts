import {
  baseServiceEnv,
  natsEnv,
  env,
  formatHostPort,
  type readEnv,
  toBaseServiceConfig,
  type BaseServiceConfig,
  type HostPort,
} from '@qpq/runtime';
import { DEFAULT_MAX_FRAME_BYTES, quicDefaults } from '@qpq/wire';

/**
 * The gateway's environment. Defaults serve a laptop running `npm run dev`:
 * - QPQ_LISTEN 127.0.0.1:7000 — the client-facing QUIC listener (UDP)
 * - QPQ_METRICS_LISTEN 127.0.0.1:9100 — /healthz, /readyz, /metrics
 * - QPQ_EDGE_TLS_CERT / QPQ_EDGE_TLS_KEY — PEM files of the certificate clients see
 * - QPQ_TLS_CA / QPQ_TLS_CERT / QPQ_TLS_KEY — internal mutual TLS; the certificate's CN must be
 *   `gateway`, or the services ignore the identity the gateway asserts
 * - QPQ_AUTH_ADDR / QPQ_KEYPACKAGE_ADDR / QPQ_DELIVERY_ADDR / QPQ_KTLOG_ADDR / QPQ_BLOB_ADDR — the backends'
 *   gRPC addresses
 * - QPQ_NATS_URL nats://127.0.0.1:4223 — where pushes for attached devices come from
 * - QPQ_MAX_FRAME_BYTES 1 MiB — largest frame accepted from (and sent to) a client
 * - QPQ_SESSION_CACHE_TTL 10s — how long a validated session token is trusted without asking auth
 *   again; a logged-out or revoked session stops working within this time
 * - QPQ_MAX_CONNECTIONS 10000 — client connections held at once; more are refused
 * - QPQ_MAX_REQUESTS_IN_FLIGHT 64 — unanswered requests per connection; more get RESOURCE_EXHAUSTED
 * - QPQ_IDLE_TIMEOUT 30s — a client not heard from (keep-alives included) for this long is dropped;
 *   also the longest a file stream may go without progress
 * - QPQ_MAX_FILE_STREAMS 4 — file streams (uploads, downloads) per connection at once; more are
 *   answered RESOURCE_EXHAUSTED (at most 8: the QUIC limit both ends share)
 * - QPQ_FILE_STREAM_TIMEOUT 15m — deadline of a whole file transfer's call to the blob service
 * - QPQ_RPC_TIMEOUT 5s — deadline of each call to a backend; QPQ_DRAIN_TIMEOUT 10s — SIGTERM drain
 */
export const gatewayEnv = {
  ...baseServiceEnv({ grpc: 7000, http: 9100 }),
  QPQ_EDGE_TLS_CERT: env.string(),
  QPQ_EDGE_TLS_KEY: env.string(),
  QPQ_AUTH_ADDR: env.listen('127.0.0.1:7101'),
  QPQ_KEYPACKAGE_ADDR: env.listen('127.0.0.1:7102'),
  QPQ_DELIVERY_ADDR: env.listen('127.0.0.1:7103'),
  QPQ_KTLOG_ADDR: env.listen('127.0.0.1:7104'),
  QPQ_BLOB_ADDR: env.listen('127.0.0.1:7105'),
  ...natsEnv(),
  QPQ_MAX_FRAME_BYTES: env.integer(DEFAULT_MAX_FRAME_BYTES, { min: 4096, max: 64 * 1024 * 1024 }),
  QPQ_SESSION_CACHE_TTL: env.duration('10s'),
  QPQ_MAX_CONNECTIONS: env.integer(10_000, { min: 1, max: 1_000_000 }),
  QPQ_MAX_REQUESTS_IN_FLIGHT: env.integer(64, { min: 1, max: 10_000 }),
  QPQ_IDLE_TIMEOUT: env.duration('30s'),
  QPQ_MAX_FILE_STREAMS: env.integer(4, { min: 1, max: quicDefaults.maxFileStreams }),
  QPQ_FILE_STREAM_TIMEOUT: env.duration('15m'),
};

export interface GatewayConfig extends BaseServiceConfig {
  edgeTls: { cert: string; key: string };
  backends: { auth: string; keypackage: string; delivery: string; ktlog: string; blob: string };
  natsUrl: string;
  maxFrameBytes: number;
  sessionCacheTtlMs: number;
  maxConnections: number;
  maxRequestsInFlight: number;
  idleTimeoutMs: number;
  maxFileStreams: number;
  fileStreamTimeoutMs: number;
}

export function envToConfig(e: ReturnType<typeof readEnv<typeof gatewayEnv>>): GatewayConfig {
  return {
    ...toBaseServiceConfig(e),
    edgeTls: { cert: e.QPQ_EDGE_TLS_CERT, key: e.QPQ_EDGE_TLS_KEY },
    backends: {
      auth: address(e.QPQ_AUTH_ADDR),
      keypackage: address(e.QPQ_KEYPACKAGE_ADDR),
      delivery: address(e.QPQ_DELIVERY_ADDR),
      ktlog: address(e.QPQ_KTLOG_ADDR),
      blob: address(e.QPQ_BLOB_ADDR),
    },
    natsUrl: e.QPQ_NATS_URL,
    maxFrameBytes: e.QPQ_MAX_FRAME_BYTES,
    sessionCacheTtlMs: e.QPQ_SESSION_CACHE_TTL,
    maxConnections: e.QPQ_MAX_CONNECTIONS,
    maxRequestsInFlight: e.QPQ_MAX_REQUESTS_IN_FLIGHT,
    idleTimeoutMs: e.QPQ_IDLE_TIMEOUT,
    maxFileStreams: e.QPQ_MAX_FILE_STREAMS,
    fileStreamTimeoutMs: e.QPQ_FILE_STREAM_TIMEOUT,
  };
}

function address(hp: HostPort): string {
  return formatHostPort(hp);
}

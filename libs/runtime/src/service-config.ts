import { env, type HostPort } from './config.js';
import { tlsEnv } from './tls.js';

/**
 * Where a service finds Postgres and NATS when nothing is configured: the stack `npm run dev` starts
 * (libs/testnet FIXED_PORTS: embedded Postgres on 5433, NATS on 4223).
 */
export const LAPTOP_DATABASE_URL = 'postgres://postgres:qpq-dev@127.0.0.1:5433/qpq';
export const LAPTOP_NATS_URL = 'nats://127.0.0.1:4223';

/** `QPQ_DATABASE_URL`, for services that keep state in Postgres. */
export const databaseEnv = () => ({
  QPQ_DATABASE_URL: env.url(['postgres', 'postgresql'], LAPTOP_DATABASE_URL),
});

/** `QPQ_NATS_URL`, for services on the bus. */
export const natsEnv = () => ({
  QPQ_NATS_URL: env.url(['nats', 'tls'], LAPTOP_NATS_URL),
});

/** Variables every backend service reads, with the defaults of a laptop. */
export function baseServiceEnv(ports: { grpc: number; http: number }) {
  return {
    QPQ_LISTEN: env.listen(`127.0.0.1:${ports.grpc}`),
    QPQ_METRICS_LISTEN: env.listen(`127.0.0.1:${ports.http}`),
    QPQ_DRAIN_TIMEOUT: env.duration('10s'),
    QPQ_RPC_TIMEOUT: env.duration('5s'),
    QPQ_DOMAIN: env.string('localhost'),
    QPQ_MAX_MESSAGE_BYTES: env.integer(1024 * 1024, { min: 1024, max: 64 * 1024 * 1024 }),
    ...tlsEnv,
  };
}

/** The base part of a service's configuration, named for code rather than the environment. */
export interface BaseServiceConfig {
  listen: HostPort;
  metricsListen: HostPort;
  drainTimeoutMs: number;
  rpcTimeoutMs: number;
  domain: string;
  maxMessageBytes: number;
  tls: { ca: string; cert: string; key: string };
}

export function toBaseServiceConfig(e: {
  QPQ_LISTEN: HostPort;
  QPQ_METRICS_LISTEN: HostPort;
  QPQ_DRAIN_TIMEOUT: number;
  QPQ_RPC_TIMEOUT: number;
  QPQ_DOMAIN: string;
  QPQ_MAX_MESSAGE_BYTES: number;
  QPQ_TLS_CA: string;
  QPQ_TLS_CERT: string;
  QPQ_TLS_KEY: string;
}): BaseServiceConfig {
  return {
    listen: e.QPQ_LISTEN,
    metricsListen: e.QPQ_METRICS_LISTEN,
    drainTimeoutMs: e.QPQ_DRAIN_TIMEOUT,
    rpcTimeoutMs: e.QPQ_RPC_TIMEOUT,
    domain: e.QPQ_DOMAIN,
    maxMessageBytes: e.QPQ_MAX_MESSAGE_BYTES,
    tls: { ca: e.QPQ_TLS_CA, cert: e.QPQ_TLS_CERT, key: e.QPQ_TLS_KEY },
  };
}

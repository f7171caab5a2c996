import {
  baseServiceEnv,
  databaseEnv,
  env,
  natsEnv,
  type readEnv,
  toBaseServiceConfig,
  type BaseServiceConfig,
} from '@qpq/runtime';

/**
 * The auth service's environment. Defaults serve a laptop running `npm run dev`:
 * - QPQ_LISTEN 127.0.0.1:7101 (gRPC), QPQ_METRICS_LISTEN 127.0.0.1:9101 (/healthz, /readyz, /metrics)
 * - QPQ_DATABASE_URL postgres://postgres:qpq-dev@127.0.0.1:5433/qpq (tables live in schema `auth`)
 * - QPQ_NATS_URL nats://127.0.0.1:4223
 * - QPQ_OPAQUE_SERVER_SETUP unset: the service creates one and keeps it in the database, so every
 *   replica and restart shares it. Set it (output of `npx @serenity-kit/opaque create-server-setup`)
 *   to keep the secret out of the database; changing it invalidates every registered password.
 * - QPQ_LOGIN_TTL 60s: how long a started login may be finished
 * - QPQ_SESSION_TTL 30d: how long a session token stays valid
 * - QPQ_MAX_DEVICES 5: active devices per account
 * - QPQ_DEVICE_EVENT_RELAY_INTERVAL 5s: how often the outbox relay looks for DeviceEvents not yet in
 *   JetStream (it also runs after every device change; this bounds the delay after a NATS outage)
 */
export const authEnv = {
  ...baseServiceEnv({ grpc: 7101, http: 9101 }),
  ...databaseEnv(),
  ...natsEnv(),
  QPQ_OPAQUE_SERVER_SETUP: env.optional(env.string()),
  QPQ_LOGIN_TTL: env.duration('60s'),
  QPQ_SESSION_TTL: env.duration('30d'),
  QPQ_MAX_DEVICES: env.integer(5, { min: 1, max: 100 }),
  QPQ_DEVICE_EVENT_RELAY_INTERVAL: env.duration('5s'),
};

export interface AuthConfig extends BaseServiceConfig {
  databaseUrl: string;
  natsUrl: string;
  /** The library's serialized server setup; undefined = shared one kept in the database. */
  opaqueServerSetup: string | undefined;
  loginTtlMs: number;
  sessionTtlMs: number;
  maxDevices: number;
  deviceEventRelayIntervalMs: number;
}

export function envToConfig(e: ReturnType<typeof readEnv<typeof authEnv>>): AuthConfig {
  return {
    ...toBaseServiceConfig(e),
    databaseUrl: e.QPQ_DATABASE_URL,
    natsUrl: e.QPQ_NATS_URL,
    opaqueServerSetup: e.QPQ_OPAQUE_SERVER_SETUP,
    loginTtlMs: e.QPQ_LOGIN_TTL,
    sessionTtlMs: e.QPQ_SESSION_TTL,
    maxDevices: e.QPQ_MAX_DEVICES,
    deviceEventRelayIntervalMs: e.QPQ_DEVICE_EVENT_RELAY_INTERVAL,
  };
}

import {
  baseServiceEnv,
  ConfigError,
  databaseEnv,
  env,
  natsEnv,
  readEnv,
  toBaseServiceConfig,
  type BaseServiceConfig,
} from '@qpq/runtime';

/**
 * The ktlog (key transparency) service's environment. Defaults serve a laptop running `npm run dev`:
 * - QPQ_LISTEN 127.0.0.1:7104 (gRPC), QPQ_METRICS_LISTEN 127.0.0.1:9104 (/healthz, /readyz, /metrics)
 * - QPQ_DATABASE_URL postgres://postgres:qpq-dev@127.0.0.1:5433/qpq (tables live in schema `ktlog`)
 * - QPQ_NATS_URL nats://127.0.0.1:4223 (DeviceEvents from the QPQ_DEVICES stream)
 * - QPQ_KTLOG_BATCH 500: DeviceEvents appended in one transaction (and covered by one new head) at most
 * - QPQ_KTLOG_MAX_ENTRIES 1000: entries one GetEntries answer carries at most
 * - QPQ_KTLOG_LOOKUP_WAIT 3s: the longest LookupUser waits for a user's first entry
 * - QPQ_KTLOG_SIGNING_KEY: path to a PKCS#8 PEM Ed25519 key that signs tree heads. When unset, a key is
 *   generated once and kept in the `ktlog` schema, so restarts keep the same key (fine for a laptop;
 *   production should mount one from a secret: clients pin it).
 */
export const ktlogEnv = {
  ...baseServiceEnv({ grpc: 7104, http: 9104 }),
  ...databaseEnv(),
  ...natsEnv(),
  QPQ_KTLOG_BATCH: env.integer(500, { min: 1, max: 10_000 }),
  QPQ_KTLOG_MAX_ENTRIES: env.integer(1000, { min: 1, max: 100_000 }),
  QPQ_KTLOG_LOOKUP_WAIT: env.duration('3s'),
  QPQ_KTLOG_SIGNING_KEY: env.optional(env.string()),
};

export interface KtlogConfig extends BaseServiceConfig {
  databaseUrl: string;
  natsUrl: string;
  batchSize: number;
  maxEntriesPerPage: number;
  /** Upper bound of LookupUser's wait_ms. */
  lookupWaitMs: number;
  /** PKCS#8 PEM file with the Ed25519 head-signing key; undefined → generated and kept in the database. */
  signingKeyPath: string | undefined;
}

export function envToConfig(e: ReturnType<typeof readEnv<typeof ktlogEnv>>): KtlogConfig {
  const cfg: KtlogConfig = {
    ...toBaseServiceConfig(e),
    databaseUrl: e.QPQ_DATABASE_URL,
    natsUrl: e.QPQ_NATS_URL,
    batchSize: e.QPQ_KTLOG_BATCH,
    maxEntriesPerPage: e.QPQ_KTLOG_MAX_ENTRIES,
    lookupWaitMs: e.QPQ_KTLOG_LOOKUP_WAIT,
    signingKeyPath: e.QPQ_KTLOG_SIGNING_KEY,
  };
  if (cfg.lookupWaitMs > 10_000) throw new ConfigError(['QPQ_KTLOG_LOOKUP_WAIT must be at most 10s']);
  return cfg;
}

/** Reads and validates the environment (one clear line per problem, as a ConfigError). */
export function readKtlogConfig(source: NodeJS.ProcessEnv = process.env): KtlogConfig {
  return envToConfig(readEnv(ktlogEnv, source));
}

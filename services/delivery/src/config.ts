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
 * The delivery service's environment. Defaults serve a laptop running `npm run dev` (its fixed ports):
 *
 * - `QPQ_LISTEN` 127.0.0.1:7103 (gRPC), `QPQ_METRICS_LISTEN` 127.0.0.1:9103 (/healthz, /readyz, /metrics),
 *   plus the rest of `baseServiceEnv` (TLS files, drain and RPC timeouts, gRPC message limit).
 * - `QPQ_DATABASE_URL` postgres://postgres:qpq-dev@127.0.0.1:5433/qpq — the service works only inside
 *   the `delivery` schema, which it creates and migrates at start.
 * - `QPQ_NATS_URL` nats://127.0.0.1:4223 — pushes go out on core NATS (`qpq.push.<deviceId>`).
 * - `QPQ_MAX_RECIPIENTS` 1000 devices per message; `QPQ_MAX_PAYLOAD_BYTES` 262144 (256 KiB) per payload
 *   (a Commit's Welcome has limits of its own of the same size). A Commit with its Welcome must fit into
 *   one gRPC message (`QPQ_MAX_MESSAGE_BYTES`), which is checked at start.
 * - `QPQ_FETCH_MAX_BYTES` 524288 (512 KiB): payload bytes one Fetch answer carries at most (it always
 *   carries at least one envelope). Must hold the largest payload and fit the gRPC message limit and
 *   the gateway's frame limit, so a full mailbox can always be read.
 * - `QPQ_MESSAGE_TTL` 30d: a message nobody acknowledged is deleted this long after it was accepted
 *   (sooner when its sender asked for a shorter `ttl_seconds`).
 * - `QPQ_GC_INTERVAL` 60s between sweeps for expired messages; `QPQ_GC_BATCH` 1000 rows per statement.
 * - `QPQ_ENQUEUE_BATCH` 64: most Enqueues stored in one statement. Requests that arrive while earlier
 *   ones are being stored are stored together (group commit: one statement, one commit, for the
 *   lot); a lone request is never delayed. 1: one message per statement, two statements at once.
 *   At most 256: a statement carries its payloads as text (hex), twice their size.
 * - `QPQ_DELIVERY_SIGNING_KEY`: path to a PKCS#8 PEM Ed25519 key that signs delivery proofs. When unset,
 *   a key is generated once and kept in the `delivery` schema so that restarts keep the same key (fine
 *   for a laptop; production should mount a key from a secret).
 */
export const deliveryEnv = {
  ...baseServiceEnv({ grpc: 7103, http: 9103 }),
  ...databaseEnv(),
  ...natsEnv(),
  QPQ_MAX_RECIPIENTS: env.integer(1000, { min: 1, max: 100_000 }),
  QPQ_MAX_PAYLOAD_BYTES: env.integer(256 * 1024, { min: 1, max: 64 * 1024 * 1024 }),
  QPQ_FETCH_MAX_BYTES: env.integer(512 * 1024, { min: 1024, max: 64 * 1024 * 1024 }),
  QPQ_MESSAGE_TTL: env.duration('30d'),
  QPQ_GC_INTERVAL: env.duration('60s'),
  QPQ_GC_BATCH: env.integer(1000, { min: 1, max: 100_000 }),
  QPQ_ENQUEUE_BATCH: env.integer(64, { min: 1, max: 256 }),
  QPQ_DELIVERY_SIGNING_KEY: env.optional(env.string()),
};

export interface DeliveryConfig extends BaseServiceConfig {
  databaseUrl: string;
  natsUrl: string;
  maxRecipients: number;
  maxPayloadBytes: number;
  fetchMaxBytes: number;
  messageTtlMs: number;
  gcIntervalMs: number;
  gcBatchSize: number;
  /** Most plain messages one statement stores (group commit). */
  enqueueBatch: number;
  /** PKCS#8 PEM file with the Ed25519 proof-signing key; undefined → generated and kept in the database. */
  signingKeyPath: string | undefined;
}

// A recipient id on the wire is a 36-character UUID plus a few bytes of protobuf framing.
const RECIPIENT_WIRE_BYTES = 40;
const REQUEST_OVERHEAD_BYTES = 1024;

export function envToConfig(e: ReturnType<typeof readEnv<typeof deliveryEnv>>): DeliveryConfig {
  const cfg: DeliveryConfig = {
    ...toBaseServiceConfig(e),
    databaseUrl: e.QPQ_DATABASE_URL,
    natsUrl: e.QPQ_NATS_URL,
    maxRecipients: e.QPQ_MAX_RECIPIENTS,
    maxPayloadBytes: e.QPQ_MAX_PAYLOAD_BYTES,
    fetchMaxBytes: e.QPQ_FETCH_MAX_BYTES,
    messageTtlMs: e.QPQ_MESSAGE_TTL,
    gcIntervalMs: e.QPQ_GC_INTERVAL,
    gcBatchSize: e.QPQ_GC_BATCH,
    enqueueBatch: e.QPQ_ENQUEUE_BATCH,
    signingKeyPath: e.QPQ_DELIVERY_SIGNING_KEY,
  };
  // A limit that gRPC would hit first makes callers see a transport error instead of ours. The largest
  // request is a Commit with its Welcome: two payloads and two recipient lists.
  const largestRequest = 2 * (cfg.maxPayloadBytes + cfg.maxRecipients * RECIPIENT_WIRE_BYTES) + REQUEST_OVERHEAD_BYTES;
  if (largestRequest > cfg.maxMessageBytes) {
    throw new ConfigError([
      `QPQ_MAX_MESSAGE_BYTES=${cfg.maxMessageBytes} is too small for QPQ_MAX_PAYLOAD_BYTES=${cfg.maxPayloadBytes} ` +
        `and QPQ_MAX_RECIPIENTS=${cfg.maxRecipients}: set it to at least ${largestRequest}`,
    ]);
  }
  if (cfg.fetchMaxBytes < cfg.maxPayloadBytes || cfg.fetchMaxBytes + REQUEST_OVERHEAD_BYTES > cfg.maxMessageBytes) {
    throw new ConfigError([
      `QPQ_FETCH_MAX_BYTES=${cfg.fetchMaxBytes} must be at least QPQ_MAX_PAYLOAD_BYTES=${cfg.maxPayloadBytes} ` +
        `and at most QPQ_MAX_MESSAGE_BYTES=${cfg.maxMessageBytes} minus ${REQUEST_OVERHEAD_BYTES}`,
    ]);
  }
  if (cfg.messageTtlMs <= 0) throw new ConfigError(['QPQ_MESSAGE_TTL must be longer than 0']);
  if (cfg.gcIntervalMs <= 0) throw new ConfigError(['QPQ_GC_INTERVAL must be longer than 0']);
  return cfg;
}

/** Reads and validates the environment (one clear line per problem, as a ConfigError). */
export function readDeliveryConfig(source: NodeJS.ProcessEnv = process.env): DeliveryConfig {
  return envToConfig(readEnv(deliveryEnv, source));
}

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
 * The keypackage service's environment. Defaults serve a laptop running `npm run dev`:
 * - QPQ_LISTEN 127.0.0.1:7102 (gRPC), QPQ_METRICS_LISTEN 127.0.0.1:9102 (/healthz, /readyz, /metrics)
 * - QPQ_DATABASE_URL postgres://postgres:qpq-dev@127.0.0.1:5433/qpq (tables live in schema `keypackage`)
 * - QPQ_NATS_URL nats://127.0.0.1:4223
 * - QPQ_MAX_KEYPACKAGES_PER_UPLOAD 100: one-time KeyPackages in one upload
 * - QPQ_MAX_KEYPACKAGE_BYTES 65536: size of one KeyPackage (an X-Wing one is about 2.7 KB)
 * - QPQ_MAX_KEYPACKAGES_PER_DEVICE 1000: one-time KeyPackages a device may keep stored
 * - QPQ_CLAIM_RATE 120: claims per calling device per minute
 * - QPQ_KEYPACKAGE_LOW_WATER 10: below this many one-time KeyPackages a device is told to upload more
 */
export const keyPackageEnv = {
  ...baseServiceEnv({ grpc: 7102, http: 9102 }),
  ...databaseEnv(),
  ...natsEnv(),
  QPQ_MAX_KEYPACKAGES_PER_UPLOAD: env.integer(100, { min: 1, max: 10_000 }),
  QPQ_MAX_KEYPACKAGE_BYTES: env.integer(64 * 1024, { min: 1024, max: 1024 * 1024 }),
  QPQ_MAX_KEYPACKAGES_PER_DEVICE: env.integer(1000, { min: 1, max: 1_000_000 }),
  QPQ_CLAIM_RATE: env.integer(120, { min: 1, max: 1_000_000 }),
  QPQ_KEYPACKAGE_LOW_WATER: env.integer(10, { min: 0, max: 1_000_000 }),
};

export interface KeyPackageConfig extends BaseServiceConfig {
  databaseUrl: string;
  natsUrl: string;
  maxKeyPackagesPerUpload: number;
  maxKeyPackageBytes: number;
  maxKeyPackagesPerDevice: number;
  /** Claims per calling device per minute. */
  claimRatePerMinute: number;
  lowWaterMark: number;
}

export function envToConfig(e: ReturnType<typeof readEnv<typeof keyPackageEnv>>): KeyPackageConfig {
  return {
    ...toBaseServiceConfig(e),
    databaseUrl: e.QPQ_DATABASE_URL,
    natsUrl: e.QPQ_NATS_URL,
    maxKeyPackagesPerUpload: e.QPQ_MAX_KEYPACKAGES_PER_UPLOAD,
    maxKeyPackageBytes: e.QPQ_MAX_KEYPACKAGE_BYTES,
    maxKeyPackagesPerDevice: e.QPQ_MAX_KEYPACKAGES_PER_DEVICE,
    claimRatePerMinute: e.QPQ_CLAIM_RATE,
    lowWaterMark: e.QPQ_KEYPACKAGE_LOW_WATER,
  };
}

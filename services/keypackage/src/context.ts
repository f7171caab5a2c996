import type { Bus } from '@qpq/bus';
import type { Logger } from '@qpq/runtime';
import type { Kysely } from 'kysely';
import type { ClaimRateLimiter } from './claim-rate-limiter.js';
import type { KeyPackageConfig } from './config.js';
import type { KeyPackageDatabase } from './db/schema.js';
import type { KeyPackageMetrics } from './metrics.js';

/** What every route of the keypackage service works with. */
export interface AppContext {
  cfg: KeyPackageConfig;
  db: Kysely<KeyPackageDatabase>;
  bus: Bus;
  logger: Logger;
  claimLimiter: ClaimRateLimiter;
  metrics: KeyPackageMetrics;
}

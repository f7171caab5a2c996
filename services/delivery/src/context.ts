import type { Bus } from '@qpq/bus';
import type { Logger } from '@qpq/runtime';
import type { Kysely } from 'kysely';
import type { KeyObject } from 'node:crypto';
import type { DeliveryConfig } from './config.js';
import type { DeliveryTables } from './db/schema.js';
import type { DeliveryMetrics } from './metrics.js';

/** Everything a route needs, built once by DeliveryService.create. */
export interface AppContext {
  cfg: DeliveryConfig;
  db: Kysely<DeliveryTables>;
  bus: Bus;
  logger: Logger;
  metrics: DeliveryMetrics;
  /** Ed25519 key that signs delivery proofs. */
  signingKey: KeyObject;
  /** Milliseconds since the Unix epoch; acceptance times and expiry are computed from it. */
  now: () => number;
}

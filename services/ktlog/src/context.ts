import type { Bus } from '@qpq/bus';
import type { Logger } from '@qpq/runtime';
import type { Kysely } from 'kysely';
import type { KeyObject } from 'node:crypto';
import type { KtlogConfig } from './config.js';
import type { KtlogTables } from './db/schema.js';
import type { HeadWatch } from './head-watch.js';
import type { KtlogMetrics } from './metrics.js';

/** Everything a route needs, built once by KtlogService.create. */
export interface AppContext {
  cfg: KtlogConfig;
  db: Kysely<KtlogTables>;
  bus: Bus;
  logger: Logger;
  /** What /metrics reports about appends and heads. */
  metrics: KtlogMetrics;
  /** Ed25519 key that signs tree heads. */
  signingKey: KeyObject;
  /** Raw public key of signingKey, sent with every head. */
  logPublicKey: Uint8Array;
  /** Wakes LookupUser calls that wait for an append. */
  heads: HeadWatch;
  /** Milliseconds since the Unix epoch; heads are timestamped with it. */
  now: () => number;
}

import type { Bus } from '@qpq/bus';
import type { AuditLog, Logger } from '@qpq/runtime';
import type { Kysely } from 'kysely';
import type { AuthConfig } from './config.js';
import type { AuthDatabase } from './db/schema.js';
import type { DeviceEventRelay } from './device-event-relay.js';
import type { DevicePushes } from './device-pushes.js';
import type { AuthMetrics } from './metrics.js';

/** What every route of the auth service works with. */
export interface AppContext {
  cfg: AuthConfig;
  db: Kysely<AuthDatabase>;
  bus: Bus;
  logger: Logger;
  audit: AuditLog;
  /** The OPAQUE server setup shared by every replica. */
  serverSetup: string;
  /** Publishes the DeviceEvent outbox; kick it after a device change commits. */
  deviceEvents: DeviceEventRelay;
  /** DevicesChanged / SessionRevoked pushes to an account's devices. */
  pushes: DevicePushes;
  metrics: AuthMetrics;
}

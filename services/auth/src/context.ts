import type { Bus } from '@qpq/bus';
import type { AuditLog, Logger } from '@qpq/runtime';
import type { Kysely } from 'kysely';
import type { AuthConfig } from './config.js';
import type { AuthDatabase } from './db/schema.js';

/** What every route of the auth service works with. */
export interface AppContext {
  cfg: AuthConfig;
  db: Kysely<AuthDatabase>;
  bus: Bus;
  logger: Logger;
  audit: AuditLog;
  /** The OPAQUE server setup shared by every replica. */
  serverSetup: string;
}

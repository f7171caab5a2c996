import type { ColumnType, Selectable } from 'kysely';

/** Kysely types of the `auth` schema; the migrations in ./migrations are what creates it. */
export interface AuthDatabase {
  server_setup: ServerSetupTable;
  accounts: AccountsTable;
  devices: DevicesTable;
  login_attempts: LoginAttemptsTable;
  sessions: SessionsTable;
  device_events: DeviceEventsTable;
}

type CreatedAt = ColumnType<Date, never, never>;

/** The one OPAQUE server setup every replica shares (when QPQ_OPAQUE_SERVER_SETUP is unset). */
export interface ServerSetupTable {
  id: ColumnType<number, 1, never>;
  setup: string;
  created_at: CreatedAt;
}

export interface AccountsTable {
  id: string;
  username: string;
  /** The OPAQUE registration record (the library's bytes); it holds no password. */
  registration_record: Buffer;
  created_at: CreatedAt;
}

export interface DevicesTable {
  id: string;
  account_id: string;
  name: string;
  /** Raw Ed25519 public key (32 bytes). */
  identity_key: Buffer;
  created_at: CreatedAt;
  revoked_at: Date | null;
}

/** The server half of an OPAQUE login between StartLogin and FinishLogin; consumed once. */
export interface LoginAttemptsTable {
  id: string;
  /** Null for an unknown username: the attempt runs on the library's fake record and always fails. */
  account_id: string | null;
  username: string;
  state: string;
  expires_at: Date;
  created_at: CreatedAt;
}

export interface SessionsTable {
  /** SHA-256 of the token: a leaked table does not hand out sessions. */
  token_hash: Buffer;
  account_id: string;
  device_id: string;
  expires_at: Date;
  created_at: CreatedAt;
}

/** The outbox of DeviceEvents: written with the change, published to JetStream by the relay. */
export interface DeviceEventsTable {
  /** UUIDv7; also the JetStream msgID, so a repeated publish is dropped. */
  event_id: string;
  op: 'add' | 'revoke';
  /** The encoded DeviceEvent (events.proto). */
  payload: Buffer;
  created_at: CreatedAt;
  /** Null until the relay has it stored in the QPQ_DEVICES stream. */
  published_at: Date | null;
}

export type AccountRow = Selectable<AccountsTable>;
export type DeviceRow = Selectable<DevicesTable>;

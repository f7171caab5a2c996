import type { ColumnType, Generated } from 'kysely';

/** Kysely types of the `keypackage` schema; the migrations in ./migrations are what creates it. */
export interface KeyPackageDatabase {
  key_packages: KeyPackagesTable;
  revoked_devices: RevokedDevicesTable;
}

export interface KeyPackagesTable {
  id: Generated<bigint>;
  /** Ids and username as the gateway asserted them at upload; this service never reads auth's tables. */
  account_id: string;
  username: string;
  device_id: string;
  /** The MLSMessage (wire format mls_key_package) exactly as uploaded. */
  data: Buffer;
  /** SHA-256 of `data`: the same one-time KeyPackage uploaded twice is stored (and handed out) once. */
  hash: Buffer;
  last_resort: boolean;
  created_at: ColumnType<Date, never, never>;
}

/** A device auth revoked (DeviceEvent OP_REVOKE): it has no KeyPackages here and may upload none. */
export interface RevokedDevicesTable {
  device_id: string;
  account_id: string;
  /** The DeviceEvent that revoked it. */
  event_id: string;
  /** When auth revoked it (the event's at_ms). */
  revoked_at: Date;
  created_at: ColumnType<Date, never, never>;
}

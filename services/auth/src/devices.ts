import type { Device } from '@qpq/proto';
import type { Kysely } from 'kysely';
import type { AuthDatabase, DeviceRow } from './db/schema.js';

/** An account's devices that are not revoked, oldest first. */
export async function activeDevices(db: Kysely<AuthDatabase>, accountId: string): Promise<Device[]> {
  const rows = await db
    .selectFrom('devices')
    .select(['id', 'name', 'identity_key', 'created_at'])
    .where('account_id', '=', accountId)
    .where('revoked_at', 'is', null)
    .orderBy('created_at')
    .orderBy('id')
    .execute();
  return rows.map(toDevice);
}

export function toDevice(row: Pick<DeviceRow, 'id' | 'name' | 'identity_key' | 'created_at'>): Device {
  return {
    deviceId: row.id,
    name: row.name,
    identityKey: new Uint8Array(row.identity_key),
    createdAtMs: BigInt(row.created_at.getTime()),
  };
}

import { sql, type Kysely } from 'kysely';
import type { KeyPackageDatabase } from './db/schema.js';

/** How many one-time KeyPackages `deviceId` has stored (inside a transaction when given one). */
export async function countOneTime(db: Kysely<KeyPackageDatabase>, deviceId: string): Promise<number> {
  const { n } = await db
    .selectFrom('key_packages')
    .select((eb) => eb.fn.countAll<bigint>().as('n'))
    .where('device_id', '=', deviceId)
    .where('last_resort', '=', false)
    .executeTakeFirstOrThrow();
  return Number(n);
}

/**
 * Serialises changes to one device's pool until the transaction ends: uploads among themselves (the
 * pool limit) and against the device's revocation (no upload slips in after it).
 */
export async function lockDevicePool(trx: Kysely<KeyPackageDatabase>, deviceId: string): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtextextended(${deviceId}, 0))`.execute(trx);
}

/** Whether auth revoked `deviceId` (as learnt from its DeviceEvent). */
export async function isRevoked(db: Kysely<KeyPackageDatabase>, deviceId: string): Promise<boolean> {
  const row = await db
    .selectFrom('revoked_devices')
    .select('device_id')
    .where('device_id', '=', deviceId)
    .executeTakeFirst();
  return row !== undefined;
}

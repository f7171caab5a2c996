import type { Kysely } from 'kysely';
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

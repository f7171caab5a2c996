import { sql, type Kysely } from 'kysely';
import type { KeyPackageDatabase } from './db/schema.js';

/** What the keypackage service holds, across every device (the gauges' sample). */
export interface KeyPackageStock {
  /** One-time KeyPackages stored, that is not claimed yet (last-resort ones are not counted: they stay). */
  oneTime: number;
  /** Devices with KeyPackages stored whose one-time ones number fewer than the low-water mark. */
  devicesBelowLowWater: number;
}

/**
 * Counts the stock in one pass over the one-time index (per device, then summed). Run every sampling
 * interval, not per scrape; a device that never uploaded (or whose KeyPackages were withdrawn) has no
 * rows and is not counted.
 */
export async function keyPackageStock(db: Kysely<KeyPackageDatabase>, lowWaterMark: number): Promise<KeyPackageStock> {
  const { rows } = await sql<{ one_time: string | null; below: string }>`
    select sum(one_time) as one_time, count(*) filter (where one_time < ${lowWaterMark}) as below
    from (
      select count(*) filter (where not last_resort) as one_time from key_packages group by device_id
    ) per_device`.execute(db);
  const row = rows[0];
  return { oneTime: Number(row?.one_time ?? 0), devicesBelowLowWater: Number(row?.below ?? 0) };
}

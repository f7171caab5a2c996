import type { Migration } from 'kysely';
import * as init from './2026-11-25T2040Z-init.js';
import * as revokedDevices from './2026-11-26T0900Z-revoked-devices.js';

/** Every migration of the `keypackage` schema, by name; names sort in the order they run. */
export const migrations: Record<string, Migration> = {
  '2026-11-25T2040Z-init': init,
  '2026-11-26T0900Z-revoked-devices': revokedDevices,
};

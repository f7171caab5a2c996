import type { Migration } from 'kysely';
import * as init from './2026-11-26T0040Z-init.js';

/** Every migration of the `ktlog` schema, by name; names sort in the order they run. */
export const migrations: Record<string, Migration> = {
  '2026-11-26T0040Z-init': init,
};

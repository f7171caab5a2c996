import type { Migration } from 'kysely';
import * as init from './2026-11-25T2040Z-init.js';
import * as deviceEvents from './2026-11-26T0900Z-device-events.js';

/** Every migration of the `auth` schema, by name; names sort in the order they run. */
export const migrations: Record<string, Migration> = {
  '2026-11-25T2040Z-init': init,
  '2026-11-26T0900Z-device-events': deviceEvents,
};

import type { Migration } from 'kysely';
import * as init from './2026-11-26T1200Z-init.js';

/** Every migration of the `blob` schema, by name; names sort in the order they run. */
export const migrations: Record<string, Migration> = {
  '2026-11-26T1200Z-init': init,
};

import type { Migration } from 'kysely';
import * as init from './2026-11-25T2038Z-init.js';
import * as commitOrdering from './2026-11-25T2300Z-commit-ordering.js';

/** Every migration of the `delivery` schema, by name; names sort in the order they run. */
export const migrations: Record<string, Migration> = {
  '2026-11-25T2038Z-init': init,
  '2026-11-25T2300Z-commit-ordering': commitOrdering,
};

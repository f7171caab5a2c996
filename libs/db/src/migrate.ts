import { Migrator, type Kysely, type Migration } from 'kysely';
import { openDatabase } from './database.js';

/**
 * Runs a service's migrations (a static index named by ISO timestamp, e.g. `2026-11-25T2100Z-init`)
 * inside its schema; idempotent, and safe when several replicas start at once (kysely takes a lock).
 */
export async function migrateToLatest(
  db: Kysely<unknown>,
  schema: string,
  migrations: Record<string, Migration>,
): Promise<string[]> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
    migrationTableSchema: schema,
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw new Error(`migrations of schema ${schema} failed`, { cause: error });
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

/**
 * Migrates a service's schema on its own and closes the connection: what `bin.ts migrate` runs (the
 * Helm chart's migration Job, before an upgrade's pods start). Answers the migrations it applied.
 */
export async function migrateDatabase(
  url: string,
  schema: string,
  migrations: Record<string, Migration>,
): Promise<string[]> {
  const db = await openDatabase<unknown>({ url, schema, poolSize: 1, statementTimeoutMs: 10 * 60_000 });
  try {
    return await migrateToLatest(db, schema, migrations);
  } finally {
    await db.destroy();
  }
}

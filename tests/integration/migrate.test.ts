/**
 * `bin.ts migrate`, what the Helm chart's migration Job runs before an upgrade's pods start: each
 * backend migrates its own schema in a real Postgres from QPQ_DATABASE_URL alone and exits 0; run
 * again it has nothing to apply; the gateway, which has no schema, and an unknown command exit 2.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startPostgres, type PostgresHandle } from '@qpq/testnet';
import pg from 'pg';

const REPO = join(fileURLToPath(import.meta.url), '..', '..', '..');
const BACKENDS = ['auth', 'keypackage', 'delivery', 'ktlog', 'blob'] as const;
let postgres: PostgresHandle;
let url: string;

before(async () => {
  postgres = await startPostgres();
  url = await postgres.createDatabase('qpq_migrate_test');
});
after(async () => {
  await postgres?.dropDatabase('qpq_migrate_test').catch(() => undefined);
  await postgres?.stop();
});

/** Runs `services/<svc>/src/bin.ts ...args` with nothing but the database URL configured. */
async function bin(svc: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', `services/${svc}/src/bin.ts`, ...args],
      { cwd: REPO, env: { PATH: process.env.PATH, QPQ_DATABASE_URL: url }, timeout: 60_000 },
    );
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

describe('bin.ts migrate', { timeout: 240_000 }, () => {
  it('migrates each backend schema from the database URL alone, then has nothing left to apply', async () => {
    const first = await Promise.all(BACKENDS.map((svc) => bin(svc, ['migrate'])));
    for (const [i, svc] of BACKENDS.entries()) {
      assert.equal(first[i]!.code, 0, `${svc}: ${first[i]!.stderr}`);
      assert.match(first[i]!.stdout, new RegExp(`^${svc}: schema up to date; applied \\S+`), svc);
    }
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    try {
      for (const svc of BACKENDS) {
        const tables = await db.query(
          `select count(*)::int as n from information_schema.tables where table_schema = $1 and table_name <> 'kysely_migration' and table_name <> 'kysely_migration_lock'`,
          [svc],
        );
        assert.ok(tables.rows[0].n > 0, `${svc} has tables of its own`);
      }
    } finally {
      await db.end();
    }
    const again = await Promise.all(BACKENDS.map((svc) => bin(svc, ['migrate'])));
    for (const [i, svc] of BACKENDS.entries()) {
      assert.equal(again[i]!.code, 0, `${svc}: ${again[i]!.stderr}`);
      assert.equal(again[i]!.stdout, `${svc}: schema up to date\n`);
    }
  });

  it('the gateway has no schema, and an unknown command is refused: both exit 2 with one line', async () => {
    const gateway = await bin('gateway', ['migrate']);
    assert.equal(gateway.code, 2);
    assert.equal(gateway.stderr, 'gateway: has no database schema to migrate\n');
    const unknown = await bin('delivery', ['migrat']);
    assert.equal(unknown.code, 2);
    assert.equal(unknown.stderr, 'delivery: unknown command migrat (only: migrate)\n');
  });

  it('an unreachable database fails the migration with exit 1 and the reason', async () => {
    const res = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'services/ktlog/src/bin.ts', 'migrate'],
      {
        cwd: REPO,
        env: { PATH: process.env.PATH, QPQ_DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' },
        timeout: 60_000,
      },
    ).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code?: number; stderr?: string }) => ({ code: err.code, stderr: err.stderr ?? '' }),
    );
    assert.equal(res.code, 1);
    assert.match(res.stderr, /^ktlog: migration failed: .*ECONNREFUSED/);
  });
});

import { startPostgres, type PostgresHandle } from '@qpq/testnet';
import { sql, type Kysely } from 'kysely';
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { openDatabase } from './database.js';
import { executePrepared } from './prepared.js';

let postgres: PostgresHandle;
let db: Kysely<unknown>;

before(
  async () => {
    postgres = await startPostgres();
    // One connection: every call below runs on the same session, which holds its prepared statements.
    db = await openDatabase<unknown>({
      url: await postgres.createDatabase('db_prepared_test'),
      schema: 'prepared_test',
      poolSize: 1,
    });
  },
  { timeout: 120_000 },
);

after(async () => {
  await db?.destroy();
  await postgres?.stop();
});

const squares = (values: number[]) =>
  executePrepared(
    db,
    'prepared_test_squares',
    sql<{ n: number; square: number }>`
    select n::int, (n * n)::int as square from unnest(${values}::int[]) as t(n)`,
  );

test('runs a statement with its parameters, parsed once per connection under its name', async () => {
  assert.deepEqual(await squares([1, 2, 3]), [
    { n: 1, square: 1 },
    { n: 2, square: 4 },
    { n: 3, square: 9 },
  ]);
  assert.deepEqual(await squares([7]), [{ n: 7, square: 49 }], 'the same statement, other parameters');
  const prepared = await sql<{ name: string }>`select name from pg_prepared_statements`.execute(db);
  assert.deepEqual(
    prepared.rows.map((r) => r.name),
    ['prepared_test_squares'],
  );
});

test('refuses a handle openDatabase did not make', async () => {
  const {
    Kysely: KyselyClass,
    DummyDriver,
    PostgresAdapter,
    PostgresIntrospector,
    PostgresQueryCompiler,
  } = await import('kysely');
  const other = new KyselyClass<unknown>({
    dialect: {
      createAdapter: () => new PostgresAdapter(),
      createDriver: () => new DummyDriver(),
      createIntrospector: (k) => new PostgresIntrospector(k),
      createQueryCompiler: () => new PostgresQueryCompiler(),
    },
  });
  await assert.rejects(executePrepared(other, 'x', sql`select 1`), /needs a handle made by openDatabase/);
});

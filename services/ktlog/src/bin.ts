import { migrateDatabase } from '@qpq/db';
import { databaseEnv, readEnv, runMain } from '@qpq/runtime';
import { migrations } from './db/migrations/index.js';
import { readKtlogConfig } from './config.js';
import { KtlogService, SCHEMA } from './index.js';

void runMain('ktlog', () => KtlogService.create(readKtlogConfig()).then((s) => s.start()), {
  migrate: () => migrateDatabase(readEnv(databaseEnv()).QPQ_DATABASE_URL, SCHEMA, migrations),
});

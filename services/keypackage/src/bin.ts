import { migrateDatabase } from '@qpq/db';
import { databaseEnv, readEnv, runMain } from '@qpq/runtime';
import { migrations } from './db/migrations/index.js';
import { envToConfig, keyPackageEnv } from './config.js';
import { KeyPackageService, SCHEMA } from './index.js';

void runMain('keypackage', () => KeyPackageService.create(envToConfig(readEnv(keyPackageEnv))).then((s) => s.start()), {
  migrate: () => migrateDatabase(readEnv(databaseEnv()).QPQ_DATABASE_URL, SCHEMA, migrations),
});

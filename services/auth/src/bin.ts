import { migrateDatabase } from '@qpq/db';
import { databaseEnv, readEnv, runMain } from '@qpq/runtime';
import { migrations } from './db/migrations/index.js';
import { authEnv, envToConfig } from './config.js';
import { AuthService, SCHEMA } from './index.js';

void runMain('auth', () => AuthService.create(envToConfig(readEnv(authEnv))).then((s) => s.start()), {
  migrate: () => migrateDatabase(readEnv(databaseEnv()).QPQ_DATABASE_URL, SCHEMA, migrations),
});

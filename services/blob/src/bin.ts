import { migrateDatabase } from '@qpq/db';
import { databaseEnv, readEnv, runMain } from '@qpq/runtime';
import { migrations } from './db/migrations/index.js';
import { readBlobConfig } from './config.js';
import { BlobService, SCHEMA } from './index.js';

void runMain('blob', () => BlobService.create(readBlobConfig()).then((s) => s.start()), {
  migrate: () => migrateDatabase(readEnv(databaseEnv()).QPQ_DATABASE_URL, SCHEMA, migrations),
});

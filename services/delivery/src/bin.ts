import { migrateDatabase } from '@qpq/db';
import { databaseEnv, readEnv, runMain } from '@qpq/runtime';
import { migrations } from './db/migrations/index.js';
import { readDeliveryConfig } from './config.js';
import { DeliveryService, SCHEMA } from './index.js';

void runMain('delivery', () => DeliveryService.create(readDeliveryConfig()).then((s) => s.start()), {
  migrate: () => migrateDatabase(readEnv(databaseEnv()).QPQ_DATABASE_URL, SCHEMA, migrations),
});

export * from './database.js';
export * from './migrate.js';
export * from './periodic-sample.js';
export * from './pool-metrics.js';
export * from './signing-key.js';
export * from './group-commit.js';
export * from './prepared.js';

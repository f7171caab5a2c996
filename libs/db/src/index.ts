export * from './database.js';
export * from './migrate.js';
export * from './signing-key.js';

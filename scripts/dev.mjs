// `npm run dev`: installs what a fresh clone is missing, then boots the whole system through the
// TypeScript launcher in libs/testnet (run in this same process, so Ctrl-C reaches exactly one
// orchestrator, which stops the services, NATS and Postgres in order).
import { ensureDependencies } from './bootstrap.mjs';

ensureDependencies();
// Imported only now: tsx may have just been installed by ensureDependencies().
const { register } = await import('tsx/esm/api');
register();
await import('../libs/testnet/src/dev.ts');

import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * Where `npm run dev` keeps its state (Postgres data, NATS store, certificates, logs):
 * `$QPQ_DEV_DIR`, else `<os.tmpdir()>/qpq-dev`. Under the temp dir rather than the home directory
 * because, as root, Postgres runs as user `postgres`, which cannot enter /root.
 * The CLI uses the same function to find and trust the dev CA.
 */
export function devDir(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.QPQ_DEV_DIR || join(tmpdir(), 'qpq-dev'));
}

/** The dev stack's internal CA certificate: `<devDir>/certs/ca.pem`. */
export function devCaPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(devDir(env), 'certs', 'ca.pem');
}

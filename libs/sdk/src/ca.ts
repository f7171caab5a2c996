import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { QpqClientError } from './errors.js';

export interface ResolvedCa {
  /** PEM text of the certificate authority to trust. */
  pem: string;
  /** Where it came from, for messages ("--ca /x.pem", "QPQ_CA", "the dev stack"). */
  source: string;
  path: string;
}

/** Where `npm run dev` writes the CA that signed the gateway's certificate. */
export function devCaPath(env: NodeJS.ProcessEnv = process.env): string {
  // The same rule as libs/testnet's devDir(), which writes it.
  return join(resolve(env.QPQ_DEV_DIR || join(tmpdir(), 'qpq-dev')), 'certs', 'ca.pem');
}

/**
 * The CA to trust for the gateway: `--ca FILE`, else env QPQ_CA, else the dev stack's CA when it
 * exists (so a laptop against `npm run dev` needs no flags), else one clear error.
 */
export function resolveCa(caPath: string | undefined, env: NodeJS.ProcessEnv = process.env): ResolvedCa {
  if (caPath) return readCa(caPath, `--ca ${caPath}`);
  if (env.QPQ_CA) return readCa(env.QPQ_CA, `QPQ_CA=${env.QPQ_CA}`);
  const dev = devCaPath(env);
  if (existsSync(dev)) return readCa(dev, 'the dev stack');
  throw new QpqClientError('no CA to trust: pass --ca FILE');
}

function readCa(path: string, source: string): ResolvedCa {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (code ?? 'unreadable');
    throw new QpqClientError(`cannot read the CA file ${path} (${why})`, undefined, { cause: err });
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new QpqClientError(`the CA file ${path} holds no PEM certificate`);
  }
  return { pem, source, path };
}

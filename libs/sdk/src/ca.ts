import { existsSync, readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
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
 * The CA to trust for the gateway: `--ca FILE`, else env QPQ_CA, else the dev stack's CA (so a laptop
 * against `npm run dev` needs no flags), else one clear error. The dev CA is trusted only for a server
 * on this machine and only when no one else could have written it: it sits in a shared temp dir, and a
 * CA planted there would otherwise vouch for any server.
 * @param serverHost the gateway's host, as given (a name, an IPv4 or an IPv6 address)
 */
export function resolveCa(
  caPath: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  serverHost?: string,
): ResolvedCa {
  if (caPath) return readCa(caPath, `--ca ${caPath}`);
  if (env.QPQ_CA) return readCa(env.QPQ_CA, `QPQ_CA=${env.QPQ_CA}`);
  const dev = devCaPath(env);
  if (serverHost !== undefined && isLoopback(serverHost) && existsSync(dev) && ownedByMeAlone(dev)) {
    return readCa(dev, 'the dev stack');
  }
  throw new QpqClientError('no CA to trust: pass --ca FILE');
}

/** localhost, 127.0.0.0/8 or ::1 (IPv4-mapped loopback included). */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (h === 'localhost' || h === 'localhost.') return true;
  const v4 = h.startsWith('::ffff:') && isIP(h.slice(7)) === 4 ? h.slice(7) : h;
  if (isIP(v4) === 4) return v4.startsWith('127.');
  if (isIP(h) === 6) return /^(0{0,4}:){2,7}0{0,3}1$/.test(h) || h === '::1';
  return false;
}

/** The file belongs to the current user and neither its group nor others may write it. */
function ownedByMeAlone(path: string): boolean {
  const uid = process.getuid?.();
  if (uid === undefined) return false; // no owners to compare (Windows): pass --ca
  try {
    const st = statSync(path);
    return st.isFile() && st.uid === uid && (st.mode & 0o022) === 0;
  } catch {
    return false;
  }
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

import { readFileSync } from 'node:fs';
import { env } from './config.js';

/** PEM files for internal mutual TLS: the internal CA, and this process's certificate and key. */
export interface TlsFiles {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

export const tlsEnv = {
  QPQ_TLS_CA: env.string(),
  QPQ_TLS_CERT: env.string(),
  QPQ_TLS_KEY: env.string(),
};

export function loadTlsFiles(paths: { ca: string; cert: string; key: string }): TlsFiles {
  return { ca: readFileSync(paths.ca), cert: readFileSync(paths.cert), key: readFileSync(paths.key) };
}

/** The common name a certificate names its holder by; the gateway's internal certificate says `gateway`. */
export const GATEWAY_COMMON_NAME = 'gateway';

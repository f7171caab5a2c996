import { type Metadata } from '@grpc/grpc-js';

/** The authenticated caller, as the gateway asserts it to internal services. */
export interface Identity {
  accountId: string;
  deviceId: string;
  username: string;
}

export const metadataKeys = {
  accountId: 'qpq-account-id',
  deviceId: 'qpq-device-id',
  username: 'qpq-username',
  requestId: 'x-request-id',
} as const;

export function writeIdentity(md: Metadata, identity: Identity): void {
  md.set(metadataKeys.accountId, identity.accountId);
  md.set(metadataKeys.deviceId, identity.deviceId);
  md.set(metadataKeys.username, identity.username);
}

export function readIdentity(md: Metadata): Identity | undefined {
  const accountId = nonEmpty(md, metadataKeys.accountId);
  const deviceId = nonEmpty(md, metadataKeys.deviceId);
  const username = nonEmpty(md, metadataKeys.username);
  if (!accountId || !deviceId || !username) return undefined;
  return { accountId, deviceId, username };
}

// Module-level rather than a closure in readIdentity: it runs on every call a service serves.
function nonEmpty(md: Metadata, key: string): string | undefined {
  const v = md.get(key)[0];
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

import * as opaque from '@serenity-kit/opaque';
import { ConfigError } from '@qpq/runtime';
import type { Kysely } from 'kysely';
import type { AuthDatabase } from './db/schema.js';
import { MalformedOpaqueMessageError } from './errors.js';

export { opaque };

/**
 * The library speaks base64url strings; the wire (auth.proto) carries the same bytes raw.
 * Clients convert with the same rule: bytes = base64url-decode(library string), unpadded.
 */
export function toLibrary(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}
export function fromLibrary(text: string): Buffer {
  return Buffer.from(text, 'base64url');
}

/** Runs one library call on client-supplied bytes; the library throws on malformed input. */
export function withClientInput<T>(what: string, call: () => T): T {
  try {
    return call();
  } catch (err) {
    throw Object.assign(new MalformedOpaqueMessageError(what), { cause: err });
  }
}

/** Refuses a configured server setup the library cannot read, as a configuration error. */
export async function assertValidServerSetup(configured: string): Promise<void> {
  await opaque.ready;
  try {
    opaque.server.getPublicKey(configured);
  } catch {
    throw new ConfigError([
      'QPQ_OPAQUE_SERVER_SETUP is not valid: expected the output of `npx @serenity-kit/opaque create-server-setup`',
    ]);
  }
}

/**
 * The server setup (the OPAQUE server's long-term key and OPRF seed). From configuration when given;
 * otherwise the one kept in the database, created by whichever replica gets there first: an insert
 * that loses the race does nothing, and everyone then reads the winner's.
 */
export async function loadServerSetup(db: Kysely<AuthDatabase>, configured: string | undefined): Promise<string> {
  await opaque.ready;
  if (configured !== undefined) return configured;
  await db
    .insertInto('server_setup')
    .values({ id: 1, setup: opaque.server.createSetup() })
    .onConflict((oc) => oc.column('id').doNothing())
    .execute();
  const row = await db.selectFrom('server_setup').select('setup').where('id', '=', 1).executeTakeFirstOrThrow();
  return row.setup;
}

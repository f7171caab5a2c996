import type { FinishRegistrationRequest, FinishRegistrationResponse } from '@qpq/proto';
import type { UnaryHandler } from '@qpq/runtime';
import { randomUUID } from 'node:crypto';
import type { AppContext } from '../context.js';
import { MalformedOpaqueMessageError, UsernameTakenError } from '../errors.js';
import { addressOf, parseUsername } from '../usernames.js';

/** Size of an OPAQUE registration record with @serenity-kit/opaque 1.1.0 (ristretto255). */
const REGISTRATION_RECORD_BYTES = 192;

/** OPAQUE registration, step 2: store the client's record; the first to finish owns the name. */
export function finishRegistration(
  ctx: AppContext,
): UnaryHandler<FinishRegistrationRequest, FinishRegistrationResponse> {
  return async (request) => {
    const username = parseUsername(request.username);
    // A record the library cannot read would only fail later, at every login: refuse it now.
    if (request.registrationRecord.byteLength !== REGISTRATION_RECORD_BYTES) {
      throw new MalformedOpaqueMessageError('registration record');
    }
    const inserted = await ctx.db
      .insertInto('accounts')
      .values({ id: randomUUID(), username, registration_record: Buffer.from(request.registrationRecord) })
      .onConflict((oc) => oc.column('username').doNothing())
      .returning('id')
      .executeTakeFirst();
    if (!inserted) throw new UsernameTakenError();
    ctx.metrics.registrations.add(1);
    ctx.audit.record('account.registered', { username, account_id: inserted.id });
    return { accountId: inserted.id, address: addressOf(username, ctx.cfg.domain) };
  };
}

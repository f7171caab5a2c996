import type { ValidateSessionRequest, ValidateSessionResponse } from '@qpq/proto';
import { requireGateway, type UnaryHandler } from '@qpq/runtime';
import type { AppContext } from '../context.js';
import { now } from '../db/time.js';
import { SessionInvalidError } from '../errors.js';
import { hashSessionToken } from '../sessions.js';

/** Longer than any token we issue (43 characters); anything longer is refused without a query. */
const MAX_TOKEN_LENGTH = 128;

/** Resolves a session token to its account and device (the gateway calls this once per attach). */
export function validateSession(ctx: AppContext): UnaryHandler<ValidateSessionRequest, ValidateSessionResponse> {
  return async (request, call) => {
    requireGateway(call);
    const token = request.sessionToken;
    if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) throw new SessionInvalidError();
    const row = await ctx.db
      .selectFrom('sessions as s')
      .innerJoin('accounts as a', 'a.id', 's.account_id')
      .innerJoin('devices as d', 'd.id', 's.device_id')
      .select(['s.account_id', 's.device_id', 's.expires_at', 'a.username'])
      .where('s.token_hash', '=', hashSessionToken(token))
      .where('s.expires_at', '>', now())
      .where('d.revoked_at', 'is', null)
      .executeTakeFirst();
    if (!row) throw new SessionInvalidError();
    return {
      accountId: row.account_id,
      deviceId: row.device_id,
      username: row.username,
      expiresAtMs: BigInt(row.expires_at.getTime()),
    };
  };
}

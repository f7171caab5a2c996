import type { StartLoginRequest, StartLoginResponse } from '@qpq/proto';
import type { UnaryHandler } from '@qpq/runtime';
import { randomUUID } from 'node:crypto';
import type { AppContext } from '../context.js';
import { nowPlus } from '../db/time.js';
import { fromLibrary, opaque, toLibrary, withClientInput } from '../opaque.js';
import { parseUsername } from '../usernames.js';

/**
 * OPAQUE login, step 1. An unknown username gets the library's fake response, of the same shape and
 * length as a real one, so the answer does not tell whether the account exists. The server state is
 * kept in Postgres (any replica may receive the finish) under a fresh single-use id with a short TTL.
 */
export function startLogin(ctx: AppContext): UnaryHandler<StartLoginRequest, StartLoginResponse> {
  return async (request) => {
    const username = parseUsername(request.username);
    const account = await ctx.db
      .selectFrom('accounts')
      .select(['id', 'registration_record'])
      .where('username', '=', username)
      .executeTakeFirst();
    const { serverLoginState, loginResponse } = withClientInput('login request', () =>
      opaque.server.startLogin({
        serverSetup: ctx.serverSetup,
        registrationRecord: account ? toLibrary(account.registration_record) : null,
        startLoginRequest: toLibrary(request.startLoginRequest),
        userIdentifier: username,
      }),
    );
    const loginId = randomUUID();
    await ctx.db
      .insertInto('login_attempts')
      .values({
        id: loginId,
        account_id: account?.id ?? null,
        username,
        state: serverLoginState,
        expires_at: nowPlus(ctx.cfg.loginTtlMs),
      })
      .execute();
    return { loginId, loginResponse: fromLibrary(loginResponse) };
  };
}

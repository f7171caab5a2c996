import type { ResolveUserRequest, ResolveUserResponse } from '@qpq/proto';
import { requireIdentity, type UnaryHandler } from '@qpq/runtime';
import type { AppContext } from '../context.js';
import { activeDevices } from '../devices.js';
import { NoSuchUserError } from '../errors.js';
import { addressOf, parseUsername } from '../usernames.js';

/** A user's account and active devices, for a logged-in caller who wants to reach them. */
export function resolveUser(ctx: AppContext): UnaryHandler<ResolveUserRequest, ResolveUserResponse> {
  return async (request, call) => {
    requireIdentity(call);
    const username = parseUsername(request.username);
    const account = await ctx.db
      .selectFrom('accounts')
      .select('id')
      .where('username', '=', username)
      .executeTakeFirst();
    if (!account) throw new NoSuchUserError(username);
    return {
      accountId: account.id,
      username,
      address: addressOf(username, ctx.cfg.domain),
      devices: await activeDevices(ctx.db, account.id),
    };
  };
}

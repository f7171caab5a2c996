import type { LogoutRequest, LogoutResponse } from '@qpq/proto';
import { requireIdentity, type UnaryHandler } from '@qpq/runtime';
import type { AppContext } from '../context.js';

/**
 * Ends the caller's sessions on this device. The identity the gateway asserts does not carry the
 * token, so every session of the device ends; the device itself stays registered.
 */
export function logout(ctx: AppContext): UnaryHandler<LogoutRequest, LogoutResponse> {
  return async (_request, call) => {
    const { accountId, deviceId, username } = requireIdentity(call);
    const deleted = await ctx.db
      .deleteFrom('sessions')
      .where('account_id', '=', accountId)
      .where('device_id', '=', deviceId)
      .executeTakeFirst();
    ctx.metrics.sessionsRevoked.add(Number(deleted.numDeletedRows));
    ctx.audit.record('session.revoked', {
      username,
      account_id: accountId,
      device_id: deviceId,
      sessions: Number(deleted.numDeletedRows),
    });
    return {};
  };
}

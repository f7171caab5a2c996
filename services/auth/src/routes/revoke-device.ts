import type { RevokeDeviceRequest, RevokeDeviceResponse } from '@qpq/proto';
import { requireIdentity, type UnaryHandler } from '@qpq/runtime';
import type { AppContext } from '../context.js';
import { recordDeviceEvent } from '../device-events.js';
import { now } from '../db/time.js';
import { DeviceAlreadyRevokedError, NoSuchDeviceError } from '../errors.js';
import { isUuid } from '../ids.js';

/**
 * Revokes one of the caller's own devices (the calling device included). In one transaction, under
 * the account's lock like every device change: the device is marked revoked (it can no longer log
 * in, it leaves ResolveUser and ListDevices and stops counting against the device limit), its
 * sessions are deleted (ValidateSession refuses them at once), and its DeviceEvent enters the
 * outbox. After commit: the relay is kicked, the account's other devices get DevicesChanged and the
 * revoked one SessionRevoked (the gateway holding it detaches).
 *
 * An unknown device and another account's are both NOT_FOUND; an already revoked one of the
 * caller's own is FAILED_PRECONDITION, which a client retrying a revoke may take as done.
 */
export function revokeDevice(ctx: AppContext): UnaryHandler<RevokeDeviceRequest, RevokeDeviceResponse> {
  return async (request, call) => {
    const caller = requireIdentity(call);
    const { accountId, username } = caller;
    // An id that is not even a UUID cannot name a device (and would make the uuid column throw).
    if (!isUuid(request.deviceId)) throw new NoSuchDeviceError();
    const deviceId = request.deviceId.toLowerCase();

    const revoked = await ctx.db.transaction().execute(async (trx) => {
      await trx.selectFrom('accounts').select('id').where('id', '=', accountId).forUpdate().executeTakeFirstOrThrow();
      const device = await trx
        .selectFrom('devices')
        .select(['identity_key', 'revoked_at'])
        .where('id', '=', deviceId)
        .where('account_id', '=', accountId)
        .executeTakeFirst();
      if (!device) throw new NoSuchDeviceError();
      if (device.revoked_at !== null) throw new DeviceAlreadyRevokedError();
      await trx.updateTable('devices').set({ revoked_at: now() }).where('id', '=', deviceId).execute();
      const sessions = await trx.deleteFrom('sessions').where('device_id', '=', deviceId).executeTakeFirst();
      await recordDeviceEvent(trx, ctx.cfg.domain, {
        op: 'revoke',
        accountId,
        username,
        deviceId,
        identityKey: new Uint8Array(device.identity_key),
      });
      const others = await trx
        .selectFrom('devices')
        .select('id')
        .where('account_id', '=', accountId)
        .where('revoked_at', 'is', null)
        .execute();
      return { sessions: Number(sessions.numDeletedRows), others: others.map((d) => d.id) };
    });

    ctx.metrics.sessionsRevoked.add(revoked.sessions);
    ctx.deviceEvents.kick();
    ctx.pushes.sessionRevoked(deviceId);
    ctx.pushes.devicesChanged(accountId, deviceId, true, revoked.others);
    ctx.audit.record('device.revoked', {
      username,
      account_id: accountId,
      device_id: deviceId,
      by_device_id: caller.deviceId,
      sessions: revoked.sessions,
    });
    return {};
  };
}

import type { ClaimedKeyPackage, ClaimKeyPackagesRequest, ClaimKeyPackagesResponse } from '@qpq/proto';
import { normalizeUsername, USERNAME_RULE } from '@qpq/crypto';
import { InvalidArgumentError, requireIdentity, type UnaryHandler } from '@qpq/runtime';
import type { AppContext } from '../context.js';
import { ClaimRateError, NoKeyPackagesError } from '../errors.js';
import { publishKeyPackagesLow } from '../low-water-notice.js';
import { countOneTime } from '../pool.js';

/** Devices one claim covers at most; an account has far fewer (QPQ_MAX_DEVICES, 5 by default). */
const MAX_DEVICES_PER_CLAIM = 32;

/**
 * One KeyPackage for each device of a user that has uploaded any: its oldest one-time KeyPackage,
 * taken with FOR UPDATE SKIP LOCKED and deleted in the same transaction (so each is handed out at
 * most once however many claims race), else its last-resort one, which stays. The calling device is
 * left out: it never needs its own KeyPackage. Devices auth revoked are left out too (their
 * KeyPackages are deleted when the revocation arrives; this also covers the moment in between).
 * Devices whose pool ran low are told after commit.
 */
export function claimKeyPackages(ctx: AppContext): UnaryHandler<ClaimKeyPackagesRequest, ClaimKeyPackagesResponse> {
  return async (request, call) => {
    const caller = requireIdentity(call);
    const allowed = ctx.claimLimiter.take(caller.deviceId);
    if (!allowed.ok) throw new ClaimRateError(allowed.retryAfterMs);
    const username = normalizeUsername(request.username);
    if (username === undefined) throw new InvalidArgumentError(USERNAME_RULE);
    if (request.deviceIds.length > MAX_DEVICES_PER_CLAIM) {
      throw new InvalidArgumentError(`a claim names at most ${MAX_DEVICES_PER_CLAIM} devices`);
    }

    let devicesQuery = ctx.db
      .selectFrom('key_packages')
      .select('device_id')
      .distinct()
      .where('username', '=', username)
      .where('device_id', '!=', caller.deviceId)
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('revoked_devices')
              .select('revoked_devices.device_id')
              .whereRef('revoked_devices.device_id', '=', 'key_packages.device_id'),
          ),
        ),
      )
      .orderBy('device_id')
      .limit(MAX_DEVICES_PER_CLAIM);
    if (request.deviceIds.length > 0) devicesQuery = devicesQuery.where('device_id', 'in', request.deviceIds);
    const devices = (await devicesQuery.execute()).map((r) => r.device_id);

    const { claimed, remaining } = await ctx.db.transaction().execute(async (trx) => {
      const claimed: ClaimedKeyPackage[] = [];
      const remaining: { deviceId: string; oneTime: number }[] = [];
      for (const deviceId of devices) {
        const oneTime = await trx
          .selectFrom('key_packages')
          .select(['id', 'data'])
          .where('device_id', '=', deviceId)
          .where('last_resort', '=', false)
          .orderBy('id')
          .limit(1)
          .forUpdate()
          .skipLocked()
          .executeTakeFirst();
        if (oneTime) {
          await trx.deleteFrom('key_packages').where('id', '=', oneTime.id).execute();
          claimed.push({ deviceId, keyPackage: new Uint8Array(oneTime.data), lastResort: false });
        } else {
          const lastResort = await trx
            .selectFrom('key_packages')
            .select('data')
            .where('device_id', '=', deviceId)
            .where('last_resort', '=', true)
            .executeTakeFirst();
          if (!lastResort) continue;
          claimed.push({ deviceId, keyPackage: new Uint8Array(lastResort.data), lastResort: true });
        }
        remaining.push({ deviceId, oneTime: await countOneTime(trx, deviceId) });
      }
      return { claimed, remaining };
    });

    for (const { lastResort } of claimed) ctx.metrics.claimed(lastResort ? 'last_resort' : 'pooled');
    for (const { deviceId, oneTime } of remaining) {
      if (oneTime < ctx.cfg.lowWaterMark) publishKeyPackagesLow(ctx.bus, deviceId, oneTime, ctx.cfg.lowWaterMark);
    }
    if (claimed.length === 0) throw new NoKeyPackagesError(username);
    return { keyPackages: claimed };
  };
}

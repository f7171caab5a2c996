import type { CountKeyPackagesRequest, CountKeyPackagesResponse } from '@qpq/proto';
import { requireIdentity, type UnaryHandler } from '@qpq/runtime';
import type { AppContext } from '../context.js';

/** The calling device's pool: one-time KeyPackages left, whether a last-resort one is stored. */
export function countKeyPackages(ctx: AppContext): UnaryHandler<CountKeyPackagesRequest, CountKeyPackagesResponse> {
  return async (_request, call) => {
    const { deviceId } = requireIdentity(call);
    const { oneTime, lastResort } = await ctx.db
      .selectFrom('key_packages')
      .select((eb) => [
        eb.fn.countAll<bigint>().filterWhere('last_resort', '=', false).as('oneTime'),
        eb.fn.countAll<bigint>().filterWhere('last_resort', '=', true).as('lastResort'),
      ])
      .where('device_id', '=', deviceId)
      .executeTakeFirstOrThrow();
    return {
      oneTimeRemaining: Number(oneTime),
      hasLastResort: Number(lastResort) > 0,
      lowWaterMark: ctx.cfg.lowWaterMark,
    };
  };
}

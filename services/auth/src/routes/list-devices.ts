import type { ListDevicesRequest, ListDevicesResponse } from '@qpq/proto';
import { requireIdentity, type UnaryHandler } from '@qpq/runtime';
import type { AppContext } from '../context.js';
import { activeDevices } from '../devices.js';

/** The caller's own active devices, oldest first. */
export function listDevices(ctx: AppContext): UnaryHandler<ListDevicesRequest, ListDevicesResponse> {
  return async (_request, call) => {
    const { accountId } = requireIdentity(call);
    return { devices: await activeDevices(ctx.db, accountId) };
  };
}

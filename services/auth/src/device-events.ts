import { DeviceEvent, DeviceEvent_Op } from '@qpq/proto';
import type { Kysely } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import type { AuthDatabase } from './db/schema.js';
import { addressOf } from './usernames.js';

/** A device added to or revoked from an account, as the outbox records it. */
export interface DeviceChange {
  op: 'add' | 'revoke';
  accountId: string;
  username: string;
  deviceId: string;
  identityKey: Uint8Array;
}

/**
 * Writes the DeviceEvent of `change` to the outbox. Call it inside the transaction that makes the
 * change, so the event exists exactly when the change does; the relay publishes it after commit.
 */
export async function recordDeviceEvent(
  trx: Kysely<AuthDatabase>,
  domain: string,
  change: DeviceChange,
): Promise<DeviceEvent> {
  const event: DeviceEvent = {
    eventId: uuidv7(),
    op: change.op === 'add' ? DeviceEvent_Op.OP_ADD : DeviceEvent_Op.OP_REVOKE,
    accountId: change.accountId,
    username: change.username,
    address: addressOf(change.username, domain),
    deviceId: change.deviceId,
    identityKey: change.identityKey,
    atMs: BigInt(Date.now()),
  };
  await trx
    .insertInto('device_events')
    .values({ event_id: event.eventId, op: change.op, payload: Buffer.from(DeviceEvent.encode(event).finish()) })
    .execute();
  return event;
}

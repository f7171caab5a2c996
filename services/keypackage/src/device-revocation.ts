import { DeviceEvent, DeviceEvent_Op } from '@qpq/proto';
import type { Logger } from '@qpq/runtime';
import type { Kysely } from 'kysely';
import type { KeyPackageDatabase } from './db/schema.js';
import { lockDevicePool } from './pool.js';

/**
 * Withdraws a revoked device: records it as revoked and deletes every KeyPackage it stored (one-time
 * and last-resort), in one transaction under the device's pool lock, so an upload racing the
 * revocation either lands before (and is deleted) or after (and is refused). Idempotent: the same
 * event again deletes nothing and changes nothing. Returns how many KeyPackages were deleted.
 */
export async function withdrawRevokedDevice(
  db: Kysely<KeyPackageDatabase>,
  event: Pick<DeviceEvent, 'eventId' | 'accountId' | 'deviceId' | 'atMs'>,
): Promise<number> {
  return db.transaction().execute(async (trx) => {
    await lockDevicePool(trx, event.deviceId);
    await trx
      .insertInto('revoked_devices')
      .values({
        device_id: event.deviceId,
        account_id: event.accountId,
        event_id: event.eventId,
        revoked_at: new Date(Number(event.atMs)),
      })
      .onConflict((oc) => oc.column('device_id').doNothing())
      .execute();
    const deleted = await trx.deleteFrom('key_packages').where('device_id', '=', event.deviceId).executeTakeFirst();
    return Number(deleted.numDeletedRows);
  });
}

/**
 * Handles one message of the QPQ_DEVICES stream: a revoke withdraws the device; anything else is
 * acknowledged untouched. A message that cannot be decoded is logged and skipped: redelivering it
 * would never help. A database failure throws, so the message comes back later.
 */
export function deviceEventHandler(db: Kysely<KeyPackageDatabase>, logger: Logger) {
  return async (msg: { subject: string; data: Uint8Array; streamSeq: number }): Promise<void> => {
    let event: DeviceEvent;
    try {
      event = DeviceEvent.decode(msg.data);
    } catch (err) {
      logger.error({ err, subject: msg.subject, seq: msg.streamSeq }, 'undecodable DeviceEvent skipped');
      return;
    }
    if (event.op !== DeviceEvent_Op.OP_REVOKE) return;
    if (event.deviceId === '') {
      logger.error({ event_id: event.eventId, seq: msg.streamSeq }, 'revoke DeviceEvent without a device skipped');
      return;
    }
    const deleted = await withdrawRevokedDevice(db, event);
    logger.info(
      { event_id: event.eventId, device: event.deviceId, key_packages_deleted: deleted },
      'revoked device withdrawn',
    );
  };
}

// Turns auth's DeviceEvents into log entries. An event the log could never append (undecodable, or
// missing what an entry binds) is logged and acknowledged: delivering it again would never help.
import { encodeLogEntry } from '@qpq/crypto';
import { DeviceEvent, DeviceEvent_Op } from '@qpq/proto';
import type { Logger } from '@qpq/runtime';
import type { NewEntry } from './log-append.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The entry a DeviceEvent appends, or undefined (logged) for one that cannot be an entry. */
export function entryOfEvent(data: Uint8Array, logger: Logger, now: () => number): NewEntry | undefined {
  let event: DeviceEvent;
  try {
    event = DeviceEvent.decode(data);
  } catch (err) {
    logger.error({ err }, 'undecodable DeviceEvent skipped');
    return undefined;
  }
  const problem = !UUID.test(event.eventId)
    ? 'event_id is not a UUID'
    : event.op !== DeviceEvent_Op.OP_ADD && event.op !== DeviceEvent_Op.OP_REVOKE
      ? 'unknown op'
      : !UUID.test(event.deviceId)
        ? 'device_id is not a UUID'
        : !event.address.includes('@')
          ? 'address is not user@domain'
          : event.identityKey.length === 0
            ? 'no identity key'
            : undefined;
  if (problem) {
    logger.error({ event_id: event.eventId, device: event.deviceId, problem }, 'DeviceEvent skipped: not a log entry');
    return undefined;
  }
  const entry: NewEntry = {
    eventId: event.eventId.toLowerCase(),
    op: event.op,
    address: event.address,
    deviceId: event.deviceId.toLowerCase(),
    identityKey: event.identityKey,
    // The time auth recorded the change; a missing one is stamped on arrival.
    timestampMs: event.atMs > 0n ? event.atMs : BigInt(now()),
  };
  try {
    // A field too long to encode would fail its whole batch on every delivery: refuse it here.
    encodeLogEntry(entry);
  } catch (err) {
    logger.error({ err, event_id: event.eventId, device: event.deviceId }, 'DeviceEvent skipped: not encodable');
    return undefined;
  }
  return entry;
}

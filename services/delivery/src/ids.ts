import { InvalidArgumentError, type Identity } from '@qpq/runtime';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether `s` is a UUID in its textual form (any version; clients send UUIDv7). */
export function isUuid(s: string): boolean {
  return UUID.test(s);
}

/**
 * The lower-case form of a UUID, or an INVALID_ARGUMENT naming the field. Ids are compared, sorted and
 * signed in this form, so `ABC…` and `abc…` are the same device.
 */
export function canonicalUuid(value: string, field: string): string {
  if (!isUuid(value))
    throw new InvalidArgumentError(`${field} must be a UUID, got ${JSON.stringify(value.slice(0, 64))}`);
  return value.toLowerCase();
}

/** The calling device's mailbox id. */
export function callerDeviceId(identity: Identity): string {
  return canonicalUuid(identity.deviceId, 'the calling device id');
}

/** The largest Postgres bigint. */
export const INT8_MAX = (1n << 63n) - 1n;

/** A uint64 from the wire as a Postgres bigint: seqs never get that large, so clamping is lossless. */
export function toInt8(value: bigint): bigint {
  return value > INT8_MAX ? INT8_MAX : value;
}

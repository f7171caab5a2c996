// The leaf data of the key-transparency log (ktlog.proto LogEntry): a canonical byte encoding, not the
// protobuf bytes, so that a verifier in any language hashes exactly what the log hashed.
import { encodeUtf8 } from './bytes.js';
import { CryptoUsageError } from './errors.js';

const DOMAIN_SEPARATOR = encodeUtf8('qpq-kt-entry-v1');
const MAX_FIELD_BYTES = 0xffff;
const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

/** What a log entry binds: the index is its position, not part of its leaf data. */
export interface KtEntryFields {
  /** 1 = add, 2 = revoke (DeviceEvent.Op). */
  op: number;
  /** user@domain */
  address: string;
  deviceId: string;
  /** Raw Ed25519 identity public key of the device. */
  identityKey: Uint8Array;
  timestampMs: bigint | number;
}

/**
 * The leaf data of a log entry: utf8 "qpq-kt-entry-v1" || u8 op || u16 BE len || utf8 address ||
 * u16 BE len || utf8 device_id || u16 BE len || identity_key || i64 BE timestamp_ms. Throws
 * CryptoUsageError for an op outside a byte, a field over 65535 bytes or a time out of range.
 */
export function encodeLogEntry(entry: KtEntryFields): Uint8Array {
  if (!Number.isInteger(entry.op) || entry.op < 0 || entry.op > 0xff) {
    throw new CryptoUsageError('log entry op must fit in one byte');
  }
  const timestamp = BigInt(entry.timestampMs);
  if (timestamp < I64_MIN || timestamp > I64_MAX) throw new CryptoUsageError('log entry timestamp out of range');
  const fields = [encodeUtf8(entry.address), encodeUtf8(entry.deviceId), entry.identityKey];
  for (const field of fields) {
    if (field.length > MAX_FIELD_BYTES) throw new CryptoUsageError('log entry field longer than 65535 bytes');
  }
  const size = DOMAIN_SEPARATOR.length + 1 + fields.reduce((n, f) => n + 2 + f.length, 0) + 8;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out.set(DOMAIN_SEPARATOR, 0);
  let offset = DOMAIN_SEPARATOR.length;
  view.setUint8(offset, entry.op);
  offset += 1;
  for (const field of fields) {
    view.setUint16(offset, field.length);
    out.set(field, offset + 2);
    offset += 2 + field.length;
  }
  view.setBigInt64(offset, timestamp);
  return out;
}

import type { LogEntry } from '@qpq/proto';
import type { EntriesTable } from './db/schema.js';
import type { Selectable } from 'kysely';

/** A stored entry as the wire's LogEntry. */
export function toLogEntry(row: Selectable<EntriesTable>): LogEntry {
  return {
    index: row.index,
    op: row.op,
    address: row.address,
    deviceId: row.device_id,
    identityKey: new Uint8Array(row.identity_key),
    timestampMs: row.timestamp_ms,
  };
}

import type { SigningKeysTable } from '@qpq/db';
import type { ColumnType } from 'kysely';

/** Postgres `bigint`: read as bigint (libs/db sets the parser), written as bigint or number. */
type Int8 = ColumnType<bigint, bigint | number, bigint | number>;

/** One leaf of the log, in append order; `index` is its position, gap-free from 0. */
export interface EntriesTable {
  index: Int8;
  /** DeviceEvent.event_id: the same event delivered twice appends once. */
  event_id: string;
  op: number;
  address: string;
  device_id: string;
  identity_key: Buffer;
  timestamp_ms: Int8;
  /** RFC 9162 leaf hash of encodeLogEntry(entry): the level-0 node. */
  leaf_hash: Buffer;
}

/** The hash of the perfect subtree of leaves [position·2^level, (position+1)·2^level), level ≥ 1. */
export interface NodesTable {
  level: number;
  position: Int8;
  hash: Buffer;
}

export interface TreeHeadsTable {
  tree_size: Int8;
  root_hash: Buffer;
  timestamp_ms: Int8;
  signature: Buffer;
}

export interface KtlogTables {
  entries: EntriesTable;
  nodes: NodesTable;
  tree_heads: TreeHeadsTable;
  signing_keys: SigningKeysTable;
}

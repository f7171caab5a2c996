import type { SigningKeysTable } from '@qpq/db';
import type { ColumnType, Generated } from 'kysely';

/** Postgres `bigint`: read as bigint (libs/db sets the parser), written as bigint or number. */
type Int8 = ColumnType<bigint, bigint | number, bigint | number>;

export interface MessagesTable {
  id: Generated<bigint>;
  message_id: string;
  sender_account_id: string;
  sender_username: string;
  sender_device_id: string;
  group_id: Buffer | null;
  /** Null once every recipient acknowledged (the row stays as the idempotency record until it expires). */
  payload: Buffer | null;
  payload_sha256: Buffer;
  /** bigint[] comes back as strings: pg has no bigint parser for arrays. */
  recipient_seqs: ColumnType<string[], string[] | undefined, string[]>;
  accepted_at: Date;
  expires_at: Date;
  proof: Buffer;
  /** message_id of the Welcome stored with this Commit, if it carried one. */
  welcome_message_id: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface MailboxTable {
  device_id: string;
  seq: Int8;
  message_pk: Int8;
}

export interface DeviceCursorsTable {
  device_id: string;
  last_seq: Int8;
  acked_seq: ColumnType<bigint, bigint | number | undefined, bigint | number>;
}

/** Per MLS group, the epoch its next Commit must be for. */
export interface GroupEpochsTable {
  group_id: Buffer;
  epoch: Int8;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

export interface DeliveryTables {
  messages: MessagesTable;
  mailbox: MailboxTable;
  device_cursors: DeviceCursorsTable;
  signing_keys: SigningKeysTable;
  group_epochs: GroupEpochsTable;
}

import { status as GrpcStatus } from '@grpc/grpc-js';
import { QpqError } from '@qpq/runtime';

/** A payload (or a Welcome's) is larger than QPQ_MAX_PAYLOAD_BYTES; refused before anything is stored. */
export class PayloadTooLargeError extends QpqError {
  override readonly name = 'PayloadTooLargeError';
  constructor(size: number, limit: number, what = 'payload') {
    super(
      GrpcStatus.RESOURCE_EXHAUSTED,
      `${what} of ${size} bytes is larger than the limit of ${limit} bytes (QPQ_MAX_PAYLOAD_BYTES)`,
    );
  }
}

/** More recipient devices than QPQ_MAX_RECIPIENTS. */
export class TooManyRecipientsError extends QpqError {
  override readonly name = 'TooManyRecipientsError';
  constructor(count: number, limit: number) {
    super(
      GrpcStatus.RESOURCE_EXHAUSTED,
      `${count} recipient devices is more than the limit of ${limit} per message (QPQ_MAX_RECIPIENTS)`,
    );
  }
}

/**
 * The message id was already used for a different message (another sender, payload or recipient set).
 * A genuine retry is identical and gets the original answer instead.
 */
export class MessageIdReusedError extends QpqError {
  override readonly name = 'MessageIdReusedError';
  constructor(messageId: string) {
    super(GrpcStatus.ALREADY_EXISTS, `message_id ${messageId} was already used for a different message`);
  }
}

/**
 * A Commit for an epoch its group has already left (another Commit won it) or not reached. ABORTED: the
 * client fetches its mailbox, applies the winning Commit and retries its change on the new epoch. (The
 * status of the runtime's ConflictError, whose literal-typed `name` a subclass cannot override.)
 */
export class CommitConflictError extends QpqError {
  override readonly name = 'CommitConflictError';
  constructor(
    readonly groupIdHex: string,
    readonly commitEpoch: bigint,
    readonly currentEpoch: bigint,
  ) {
    super(
      GrpcStatus.ABORTED,
      `commit conflict: group ${groupIdHex} is at epoch ${currentEpoch}, this Commit is for epoch ${commitEpoch}; ` +
        'fetch, apply the winning Commit and retry on the new epoch',
    );
  }
}

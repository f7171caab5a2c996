import { status as GrpcStatus } from '@grpc/grpc-js';
import { QpqError } from '@qpq/runtime';

/** The payload is larger than QPQ_MAX_PAYLOAD_BYTES; refused before anything is stored. */
export class PayloadTooLargeError extends QpqError {
  override readonly name = 'PayloadTooLargeError';
  constructor(size: number, limit: number) {
    super(
      GrpcStatus.RESOURCE_EXHAUSTED,
      `payload of ${size} bytes is larger than the limit of ${limit} bytes (QPQ_MAX_PAYLOAD_BYTES)`,
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

import { status as GrpcStatus } from '@grpc/grpc-js';
import { QpqError } from '@qpq/runtime';

/** An index or tree size outside the newest tree head (or a from_size past to_size). */
export class OutOfRangeError extends QpqError {
  override readonly name = 'OutOfRangeError';
  constructor(message: string) {
    super(GrpcStatus.OUT_OF_RANGE, message);
  }
}

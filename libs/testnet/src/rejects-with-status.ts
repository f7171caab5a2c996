import { status } from '@grpc/grpc-js';
import assert from 'node:assert/strict';

/**
 * Asserts that a gRPC call fails with `code` and, when given, with exactly `details` (a string) or
 * details matching it (a RegExp): the status and the one line a person would be shown.
 *
 * @example
 * await rejectsWithStatus(client.call(Rpc.logout, {}), status.UNAUTHENTICATED, /log in/);
 */
export async function rejectsWithStatus(
  promise: Promise<unknown>,
  code: status,
  details?: string | RegExp,
): Promise<void> {
  await assert.rejects(promise, (err: { code?: number; details?: string }) => {
    assert.equal(err.code, code, `expected ${status[code]}, got ${status[err.code ?? -1]}: ${err.details}`);
    if (typeof details === 'string') assert.equal(err.details, details);
    else if (details) assert.match(err.details ?? '', details);
    return true;
  });
}

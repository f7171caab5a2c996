// Client- and server-streaming calls on GrpcServer: the handler types, and how a call's messages are read
// and written (idle timeout, cancellation, flow control). The per-call scope is grpc-call.ts's, as for unary.
import {
  status as GrpcStatus,
  type ServerReadableStream,
  type ServerWritableStream,
  type sendUnaryData,
} from '@grpc/grpc-js';
import type { CallContext, CallScope } from './grpc-call.js';
import { QpqError } from './errors.js';

/**
 * A client-streaming RPC: the requests arrive in order, each `next()` waiting at most the idle timeout
 * (then StreamIdleTimeoutError) and ending early when the call is cancelled (the iteration throws the
 * signal's reason). gRPC flow control holds back a sender the handler does not keep up with. Whatever the
 * caller still sends once the handler settles is not read.
 */
export type ClientStreamHandler<Req, Res> = (requests: AsyncIterable<Req>, ctx: CallContext) => Promise<Res>;

/** A server-streaming RPC: the handler sends through `out` and resolves when it has sent everything. */
export type ServerStreamHandler<Req, Res> = (request: Req, out: ResponseStream<Res>, ctx: CallContext) => Promise<void>;

export interface ResponseStream<Res> {
  /**
   * Sends one message. Resolves at once while the stream's buffer has room, else when it drained;
   * rejects when the call was cancelled or the reader took nothing for the idle timeout.
   */
  send(message: Res): Promise<void>;
}

/** The peer sent (or read) nothing for the stream idle timeout. */
export class StreamIdleTimeoutError extends QpqError {
  override readonly name = 'StreamIdleTimeoutError';
  constructor(message: string) {
    super(GrpcStatus.DEADLINE_EXCEEDED, message);
  }
}

export async function serveClientStream(
  scope: CallScope,
  call: ServerReadableStream<unknown, unknown>,
  callback: sendUnaryData<unknown>,
  handler: ClientStreamHandler<unknown, unknown>,
  idleMs: number,
): Promise<void> {
  let response: unknown;
  let failed: { code: GrpcStatus; details: string } | undefined;
  try {
    response = await scope.run(() => handler(readWithTimeout(call, scope.ctx.signal, idleMs), scope.ctx));
  } catch (err) {
    failed = scope.fail(err);
  }
  if (failed) callback(failed);
  else {
    scope.succeed();
    callback(null, response);
  }
  // Whatever the client still sends is not read: the answer (or refusal) has been given.
  call.destroy();
}

export async function serveServerStream(
  scope: CallScope,
  call: ServerWritableStream<unknown, unknown>,
  handler: ServerStreamHandler<unknown, unknown>,
  idleMs: number,
): Promise<void> {
  const out: ResponseStream<unknown> = {
    send: (message) => writeWithBackpressure(call, message, scope.ctx.signal, idleMs),
  };
  try {
    await scope.run(() => handler(call.request, out, scope.ctx));
    scope.succeed();
    call.end();
  } catch (err) {
    const { code, details } = scope.fail(err);
    // grpc-js ends the call with this status (ServerWritableStreamImpl's 'error' listener).
    call.emit('error', Object.assign(new Error(details), { code, details }));
  }
}

/** The call's messages, one `next()` at a time, each bounded by the idle timeout and the call's signal. */
async function* readWithTimeout<T>(call: ServerReadableStream<T, unknown>, signal: AbortSignal, idleMs: number) {
  const messages = call[Symbol.asyncIterator]() as AsyncIterator<T>;
  let done = false;
  try {
    for (;;) {
      const next = await within(
        messages.next(),
        signal,
        idleMs,
        () => new StreamIdleTimeoutError(`no request message for ${idleMs} ms`),
      );
      if (next.done) {
        done = true;
        return;
      }
      yield next.value;
    }
  } finally {
    // Not awaited: a next() still pending (a timeout, a cancel) would hold return() up until the stream
    // ends; destroying the stream ends it.
    if (!done) call.destroy();
    void messages.return?.().catch(() => undefined);
  }
}

async function writeWithBackpressure(
  call: ServerWritableStream<unknown, unknown>,
  message: unknown,
  signal: AbortSignal,
  idleMs: number,
): Promise<void> {
  signal.throwIfAborted();
  if (call.write(message)) return;
  let onDrain: (() => void) | undefined;
  const drained = new Promise<void>((resolve) => call.once('drain', (onDrain = resolve)));
  try {
    // A cancelled call never drains (grpc-js drops writes after cancel): the signal ends the wait.
    await within(drained, signal, idleMs, () => new StreamIdleTimeoutError(`the reader took nothing for ${idleMs} ms`));
  } finally {
    if (onDrain) call.off('drain', onDrain);
  }
}

/**
 * `promise`, or a rejection when `signal` aborts (already, or meanwhile) or `ms` pass first. `promise` is
 * observed whatever ends the wait: a read given up on rejects later (ERR_STREAM_PREMATURE_CLOSE once the
 * call is destroyed), and unobserved that would be an unhandled rejection, which ends the process.
 */
function within<T>(promise: Promise<T>, signal: AbortSignal, ms: number, timeout: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => settle(() => reject(timeout())), ms);
    const onAbort = () => settle(() => reject(signal.reason));
    function settle(fn: () => void) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      fn();
    }
    promise.then(
      (value) => settle(() => resolve(value)),
      (err: unknown) => settle(() => reject(err)),
    );
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
}

// What every served call gets, whatever its kind (unary, client- or server-streaming): written once here
// and used by GrpcServer for all three.
import { status as GrpcStatus, type Metadata, type ServerUnaryCall } from '@grpc/grpc-js';
import { context, propagation, SpanStatusCode, trace } from '@opentelemetry/api';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { requestScope } from './context.js';
import { PermissionDeniedError, QpqError, toGrpcStatus, UnauthenticatedError } from './errors.js';
import { metadataKeys, readIdentity, type Identity } from './identity.js';
import { metadataGetter } from './propagation.js';
import type { Telemetry } from './telemetry.js';
import { GATEWAY_COMMON_NAME } from './tls.js';

/** What a route handler knows about the call besides its request. */
export interface CallContext {
  method: string;
  requestId: string;
  /** The caller as asserted by the gateway; undefined for calls that carry none or come from elsewhere. */
  identity: Identity | undefined;
  /** Common name of the peer's (CA-verified) client certificate, e.g. `gateway`. */
  peer: string | undefined;
  logger: Logger;
  /** Aborted (reason: CancelledError) when the caller cancels or the deadline passes. */
  signal: AbortSignal;
}

/** Refuses (PERMISSION_DENIED) a call that did not come from the gateway's certificate. */
export function requireGateway(ctx: CallContext): void {
  if (ctx.peer !== GATEWAY_COMMON_NAME) throw new PermissionDeniedError('only the gateway may call this');
}

/** The caller's identity, or UNAUTHENTICATED. */
export function requireIdentity(ctx: CallContext): Identity {
  if (!ctx.identity) throw new UnauthenticatedError('this call needs a logged-in device');
  return ctx.identity;
}

/** The caller cancelled the call, its deadline passed, or the connection went away. */
export class CancelledError extends QpqError {
  override readonly name = 'CancelledError';
  constructor() {
    super(GrpcStatus.CANCELLED, 'the call was cancelled');
  }
}

/** One call being served: its context, and how it ends (metric, span, log line). */
export interface CallScope {
  ctx: CallContext;
  /** Runs the handler inside the call's trace span and request scope. */
  run<T>(fn: () => Promise<T>): Promise<T>;
  /** Records a successful end. */
  succeed(): void;
  /** Records a failed end and gives the status to answer with (CANCELLED once the call was cancelled). */
  fail(err: unknown): { code: GrpcStatus; details: string };
}

/** What openCall reads of a call of any kind (grpc-js does not export its ServerSurfaceCall). */
export interface ServedCall {
  readonly metadata: Metadata;
  getAuthContext(): ReturnType<ServerUnaryCall<unknown, unknown>['getAuthContext']>;
  on(event: 'cancelled', listener: () => void): unknown;
}

export interface CallDeps {
  logger: Logger;
  telemetry: Telemetry;
}

/**
 * Opens the scope of one call: request id from metadata (or a new one), identity honoured only from the
 * gateway's certificate, a trace span continuing the caller's, and on its end a duration metric by method
 * and code and a log line (an error line for INTERNAL).
 */
export function openCall(path: string, call: ServedCall, deps: CallDeps): CallScope {
  const started = performance.now();
  const requestId = firstString(call.metadata, metadataKeys.requestId) ?? randomUUID();
  const cn = call.getAuthContext()?.sslPeerCertificate?.subject?.CN;
  const peer = typeof cn === 'string' ? cn : undefined;
  const identity = peer === GATEWAY_COMMON_NAME ? readIdentity(call.metadata) : undefined;
  const abort = new AbortController();
  call.on('cancelled', () => abort.abort(new CancelledError()));
  const parent = propagation.extract(context.active(), call.metadata, metadataGetter);
  const span = trace
    .getTracer('qpq-grpc')
    .startSpan(path, { attributes: { 'rpc.system': 'grpc', 'rpc.method': path } }, parent);
  const ctx: CallContext = {
    method: path,
    requestId,
    identity,
    peer,
    logger: deps.logger.child({ method: path }),
    signal: abort.signal,
  };
  const finish = (code: GrpcStatus, err?: unknown) => {
    const seconds = (performance.now() - started) / 1000;
    deps.telemetry.rpcServerDuration.record(seconds, { method: path, code: GrpcStatus[code] ?? String(code) });
    if (code !== GrpcStatus.OK) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end();
    const fields = { code: GrpcStatus[code], ms: Math.round(seconds * 1000), peer };
    if (code === GrpcStatus.INTERNAL) ctx.logger.error({ ...fields, err }, 'rpc failed');
    else ctx.logger.debug(fields, 'rpc');
  };
  return {
    ctx,
    // The handler is called from an async function so that one throwing synchronously still ends as a status.
    run: (fn) => context.with(trace.setSpan(parent, span), () => requestScope.run({ requestId }, async () => fn())),
    succeed: () => finish(GrpcStatus.OK),
    fail: (err) => {
      // Whatever a cancelled call's handler threw (often the abort itself), the caller has gone.
      const status = abort.signal.aborted ? toGrpcStatus(new CancelledError()) : toGrpcStatus(err);
      finish(status.code, err);
      return status;
    },
  };
}

function firstString(md: Metadata, key: string): string | undefined {
  const v = md.get(key)[0];
  return typeof v === 'string' && v.length > 0 && v.length <= 128 ? v : undefined;
}

// What every served call gets, whatever its kind (unary, client- or server-streaming): written once here
// and used by GrpcServer for all three.
import { status as GrpcStatus, type Metadata, type ServerUnaryCall } from '@grpc/grpc-js';
import { context, propagation, SpanStatusCode, trace, type Context, type Span } from '@opentelemetry/api';
import { randomUUID } from 'node:crypto';
import { TLSSocket } from 'node:tls';
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

const tracer = trace.getTracer('qpq-grpc');

/**
 * Opens the scope of one call: request id from metadata (or a new one), identity honoured only from the
 * gateway's certificate, a trace span continuing the caller's, and on its end a duration metric by method
 * and code and a log line (an error line for INTERNAL). What a handler may not use (its logger, its
 * signal) is made when first read: most calls never read them.
 */
export function openCall(path: string, call: ServedCall, deps: CallDeps): CallScope {
  return new OpenCall(path, call, deps);
}

/** One call's scope (a class: no closures to make per call on the hot path). */
class OpenCall implements CallScope {
  readonly ctx: CallContext;
  private readonly started = performance.now();
  private readonly parent: Context;
  private readonly span: Span;
  private readonly peer: string | undefined;
  /** grpc-js reports every call as cancelled once its status is sent (then nobody is listening). */
  private cancelled = false;
  private abort: AbortController | undefined;
  private logger: Logger | undefined;

  constructor(
    private readonly path: string,
    call: ServedCall,
    private readonly deps: CallDeps,
  ) {
    const requestId = firstString(call.metadata, metadataKeys.requestId) ?? randomUUID();
    const peer = peerCommonName(call);
    this.peer = peer;
    const identity = peer === GATEWAY_COMMON_NAME ? readIdentity(call.metadata) : undefined;
    // The CancelledError is made only for a signal someone holds (or once it is read).
    call.on('cancelled', () => {
      this.cancelled = true;
      this.abort?.abort(new CancelledError());
    });
    this.parent = propagation.extract(context.active(), call.metadata, metadataGetter);
    this.span = tracer.startSpan(path, { attributes: { 'rpc.system': 'grpc', 'rpc.method': path } }, this.parent);
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the getters below are the context's, not ours
    const scope = this;
    this.ctx = {
      method: path,
      requestId,
      identity,
      peer,
      get logger() {
        return scope.callLogger();
      },
      get signal() {
        return scope.signal();
      },
    };
  }

  // The handler is called from an async function so that one throwing synchronously still ends as a status.
  run<T>(fn: () => Promise<T>): Promise<T> {
    return context.with(trace.setSpan(this.parent, this.span), () =>
      requestScope.run({ requestId: this.ctx.requestId }, async () => fn()),
    );
  }

  succeed(): void {
    this.finish(GrpcStatus.OK);
  }

  fail(err: unknown): { code: GrpcStatus; details: string } {
    // Whatever a cancelled call's handler threw (often the abort itself), the caller has gone.
    const status = this.cancelled ? toGrpcStatus(new CancelledError()) : toGrpcStatus(err);
    this.finish(status.code, err);
    return status;
  }

  private callLogger(): Logger {
    return (this.logger ??= this.deps.logger.child({ method: this.path }));
  }

  private signal(): AbortSignal {
    if (!this.abort) {
      this.abort = new AbortController();
      if (this.cancelled) this.abort.abort(new CancelledError());
    }
    return this.abort.signal;
  }

  private finish(code: GrpcStatus, err?: unknown): void {
    const { deps, span, peer } = this;
    const seconds = (performance.now() - this.started) / 1000;
    deps.telemetry.rpcServerDuration.record(seconds, { method: this.path, code: GrpcStatus[code] ?? String(code) });
    if (code !== GrpcStatus.OK) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end();
    if (code === GrpcStatus.INTERNAL) {
      this.callLogger().error({ code: GrpcStatus[code], ms: Math.round(seconds * 1000), peer, err }, 'rpc failed');
    } else if (deps.logger.isLevelEnabled('debug')) {
      this.callLogger().debug({ code: GrpcStatus[code], ms: Math.round(seconds * 1000), peer }, 'rpc');
    }
  }
}

/**
 * The common name of the peer's certificate, read once per HTTP/2 session: TLSSocket.getPeerCertificate
 * builds a whole certificate object (fingerprints, key, extensions) on each call, and a connection
 * carries many calls. Sound because the peer cannot change within a session: Node disables TLS
 * renegotiation on every HTTP/2 socket (as RFC 9113 requires). grpc-js exposes no per-connection
 * handle, so the session is found on its call objects; if their shape ever changes, every call reads
 * the certificate again (grpc-call.test.ts notices that).
 */
function peerCommonName(call: ServedCall): string | undefined {
  const session = http2SessionOf(call);
  if (session && peerBySession.has(session)) return peerBySession.get(session);
  const cn = call.getAuthContext()?.sslPeerCertificate?.subject?.CN;
  const peer = typeof cn === 'string' ? cn : undefined;
  if (session) peerBySession.set(session, peer);
  return peer;
}

const peerBySession = new WeakMap<object, string | undefined>();

/** How many call objects deep grpc-js may keep the HTTP/2 stream (one per server interceptor). */
const MAX_CALL_DEPTH = 8;

/**
 * The HTTP/2 session a call came on, when it is a TLS session: grpc-js's surface call holds its
 * intercepting call (`call`), whose innermost `nextCall` holds the HTTP/2 `stream`.
 */
export function http2SessionOf(call: ServedCall): object | undefined {
  let inner: unknown = (call as { call?: unknown }).call;
  for (let depth = 0; depth < MAX_CALL_DEPTH && isObject(inner); depth++) {
    const stream = (inner as { stream?: unknown }).stream;
    if (isObject(stream)) {
      const session = (stream as { session?: unknown }).session;
      if (!isObject(session)) return undefined;
      const encrypted = (session as { encrypted?: unknown }).encrypted === true;
      return encrypted && (session as { socket?: unknown }).socket instanceof TLSSocket ? session : undefined;
    }
    inner = (inner as { nextCall?: unknown }).nextCall;
  }
  return undefined;
}

function isObject(value: unknown): value is object {
  return typeof value === 'object' && value !== null;
}

function firstString(md: Metadata, key: string): string | undefined {
  const v = md.get(key)[0];
  return typeof v === 'string' && v.length > 0 && v.length <= 128 ? v : undefined;
}

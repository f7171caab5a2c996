import {
  Server,
  ServerCredentials,
  status as GrpcStatus,
  type Metadata,
  type ServerUnaryCall,
  type sendUnaryData,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { context, propagation, SpanStatusCode, trace } from '@opentelemetry/api';
import { HealthImplementation } from 'grpc-health-check';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { formatHostPort, type HostPort } from './config.js';
import { requestScope } from './context.js';
import { PermissionDeniedError, toGrpcStatus, UnauthenticatedError } from './errors.js';
import { metadataKeys, readIdentity, type Identity } from './identity.js';
import { metadataGetter } from './propagation.js';
import type { Telemetry } from './telemetry.js';
import { GATEWAY_COMMON_NAME, type TlsFiles } from './tls.js';

/** What a route handler knows about the call besides its request. */
export interface CallContext {
  method: string;
  requestId: string;
  /** The caller as asserted by the gateway; undefined for calls that carry none or come from elsewhere. */
  identity: Identity | undefined;
  /** Common name of the peer's (CA-verified) client certificate, e.g. `gateway`. */
  peer: string | undefined;
  logger: Logger;
  /** Aborted when the caller cancels or the deadline passes. */
  signal: AbortSignal;
}

export type UnaryHandler<Req, Res> = (request: Req, ctx: CallContext) => Promise<Res>;

/** Route handlers for a ts-proto service definition, one async function per RPC. */
export type Routes<D> = {
  [K in keyof D]: D[K] extends {
    requestDeserialize: (b: Buffer) => infer Req;
    responseSerialize: (v: infer Res) => Buffer;
  }
    ? UnaryHandler<Req, Res>
    : never;
};

/** Refuses (PERMISSION_DENIED) a call that did not come from the gateway's certificate. */
export function requireGateway(ctx: CallContext): void {
  if (ctx.peer !== GATEWAY_COMMON_NAME) throw new PermissionDeniedError('only the gateway may call this');
}

/** The caller's identity, or UNAUTHENTICATED. */
export function requireIdentity(ctx: CallContext): Identity {
  if (!ctx.identity) throw new UnauthenticatedError('this call needs a logged-in device');
  return ctx.identity;
}

export interface GrpcServerOptions {
  service: string;
  tls: TlsFiles;
  logger: Logger;
  telemetry: Telemetry;
  maxMessageBytes: number;
}

/**
 * A gRPC server over mutual TLS with the health protocol, per-call logging and metrics, and error
 * mapping. Identity metadata is honoured only when the peer's certificate is the gateway's.
 */
export class GrpcServer {
  readonly health = new HealthImplementation({ '': 'NOT_SERVING' });
  private readonly server: Server;
  private readonly serviceNames: string[] = [];

  constructor(private readonly opts: GrpcServerOptions) {
    this.server = new Server({
      'grpc.max_receive_message_length': opts.maxMessageBytes,
      'grpc.max_send_message_length': opts.maxMessageBytes,
    });
    this.health.addToServer(this.server);
  }

  addService<D extends ServiceDefinition>(name: string, definition: D, routes: Routes<D>): void {
    const impl: UntypedServiceImplementation = {};
    for (const [key, method] of Object.entries(definition)) {
      const handler = (routes as Record<string, UnaryHandler<unknown, unknown>>)[key];
      if (!handler) throw new Error(`${name}: no route for ${method.path}`);
      impl[key] = this.wrap(method.path, handler);
    }
    this.server.addService(definition, impl);
    this.serviceNames.push(name);
  }

  async listen(listen: HostPort): Promise<string> {
    const { tls } = this.opts;
    const creds = ServerCredentials.createSsl(tls.ca, [{ private_key: tls.key, cert_chain: tls.cert }], true);
    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(formatHostPort(listen), creds, (err, p) => (err ? reject(err) : resolve(p))),
    );
    return formatHostPort({ host: listen.host, port });
  }

  setServing(serving: boolean): void {
    const status = serving ? 'SERVING' : 'NOT_SERVING';
    this.health.setStatus('', status);
    for (const name of this.serviceNames) this.health.setStatus(name, status);
  }

  /** Stops taking calls, lets calls in flight finish up to `timeoutMs`, then cuts the rest. */
  async drain(timeoutMs: number): Promise<void> {
    this.setServing(false);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, timeoutMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private wrap(path: string, handler: UnaryHandler<unknown, unknown>) {
    const { logger, telemetry } = this.opts;
    const tracer = trace.getTracer('qpq-grpc');
    return (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
      const started = performance.now();
      const requestId = firstString(call.metadata, metadataKeys.requestId) ?? randomUUID();
      const cn = call.getAuthContext()?.sslPeerCertificate?.subject?.CN;
      const peerCn = typeof cn === 'string' ? cn : undefined;
      const identity = peerCn === GATEWAY_COMMON_NAME ? readIdentity(call.metadata) : undefined;
      const abort = new AbortController();
      call.on('cancelled', () => abort.abort());
      const parent = propagation.extract(context.active(), call.metadata, metadataGetter);
      const span = tracer.startSpan(path, { attributes: { 'rpc.system': 'grpc', 'rpc.method': path } }, parent);
      const ctx: CallContext = {
        method: path,
        requestId,
        identity,
        peer: peerCn,
        logger: logger.child({ method: path }),
        signal: abort.signal,
      };
      const finish = (code: GrpcStatus, err?: unknown) => {
        const seconds = (performance.now() - started) / 1000;
        telemetry.rpcServerDuration.record(seconds, { method: path, code: GrpcStatus[code] ?? String(code) });
        if (code !== GrpcStatus.OK) span.setStatus({ code: SpanStatusCode.ERROR });
        span.end();
        const fields = { code: GrpcStatus[code], ms: Math.round(seconds * 1000), peer: peerCn };
        if (code === GrpcStatus.INTERNAL) ctx.logger.error({ ...fields, err }, 'rpc failed');
        else ctx.logger.debug(fields, 'rpc');
      };
      context.with(trace.setSpan(parent, span), () =>
        requestScope.run({ requestId }, () => {
          handler(call.request, ctx).then(
            (response) => {
              finish(GrpcStatus.OK);
              callback(null, response);
            },
            (err: unknown) => {
              const { code, details } = toGrpcStatus(err);
              finish(code, err);
              callback({ code, details });
            },
          );
        }),
      );
    };
  }
}

function firstString(md: Metadata, key: string): string | undefined {
  const v = md.get(key)[0];
  return typeof v === 'string' && v.length > 0 && v.length <= 128 ? v : undefined;
}

import {
  Server,
  ServerCredentials,
  type ServerReadableStream,
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import type { Logger } from 'pino';
import { formatHostPort, type HostPort } from './config.js';
import { openCall, type CallContext, type CallScope, type ServedCall } from './grpc-call.js';
import {
  serveClientStream,
  serveServerStream,
  type ClientStreamHandler,
  type ServerStreamHandler,
} from './grpc-streaming.js';
import type { Telemetry } from './telemetry.js';
import type { TlsFiles } from './tls.js';

export type UnaryHandler<Req, Res> = (request: Req, ctx: CallContext) => Promise<Res>;

/**
 * The handler a method of a ts-proto service definition takes, chosen by its requestStream and
 * responseStream flags: UnaryHandler, ClientStreamHandler or ServerStreamHandler (bidirectional streaming
 * is not served).
 */
export type RouteFor<M> = M extends {
  requestStream: infer ReqStream;
  responseStream: infer ResStream;
  requestDeserialize: (b: Buffer) => infer Req;
  responseSerialize: (v: infer Res) => Buffer;
}
  ? [ReqStream] extends [true]
    ? [ResStream] extends [true]
      ? never
      : ClientStreamHandler<Req, Res>
    : [ResStream] extends [true]
      ? ServerStreamHandler<Req, Res>
      : UnaryHandler<Req, Res>
  : never;

/** Route handlers for a ts-proto service definition, one async function per RPC. */
export type Routes<D> = { [K in keyof D]: RouteFor<D[K]> };

export interface AddServiceOptions {
  /**
   * Longest wait, in a streaming call, for the caller's next message or for a full response buffer to
   * drain (then DEADLINE_EXCEEDED). Default DEFAULT_STREAM_IDLE_TIMEOUT_MS.
   */
  streamIdleTimeoutMs?: number;
}

export const DEFAULT_STREAM_IDLE_TIMEOUT_MS = 30_000;

export interface GrpcServerOptions {
  service: string;
  tls: TlsFiles;
  logger: Logger;
  telemetry: Telemetry;
  maxMessageBytes: number;
}

type AnyHandler =
  UnaryHandler<unknown, unknown> | ClientStreamHandler<unknown, unknown> | ServerStreamHandler<unknown, unknown>;

/**
 * A gRPC server over mutual TLS with the health protocol, per-call logging and metrics, and error
 * mapping, for unary and client- or server-streaming methods alike. Identity metadata is honoured only
 * when the peer's certificate is the gateway's.
 */
export class GrpcServer {
  readonly health = new HealthImplementation({ '': 'NOT_SERVING' });
  private readonly server: Server;
  private readonly serviceNames: string[] = [];
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly opts: GrpcServerOptions) {
    this.server = new Server({
      'grpc.max_receive_message_length': opts.maxMessageBytes,
      'grpc.max_send_message_length': opts.maxMessageBytes,
    });
    this.health.addToServer(this.server);
  }

  addService<D extends ServiceDefinition>(
    name: string,
    definition: D,
    routes: Routes<D>,
    options: AddServiceOptions = {},
  ): void {
    const idleMs = options.streamIdleTimeoutMs ?? DEFAULT_STREAM_IDLE_TIMEOUT_MS;
    const impl: UntypedServiceImplementation = {};
    for (const [key, method] of Object.entries(definition)) {
      const handler = (routes as Record<string, AnyHandler | undefined>)[key];
      if (!handler) throw new Error(`${name}: no route for ${method.path}`);
      const open = (call: ServedCall) => openCall(method.path, call, this.opts);
      if (!method.requestStream && !method.responseStream) {
        const unary = handler as UnaryHandler<unknown, unknown>;
        impl[key] = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) =>
          this.track(serveUnary(open(call), call, callback, unary));
      } else if (method.requestStream && !method.responseStream) {
        const clientStream = handler as ClientStreamHandler<unknown, unknown>;
        impl[key] = (call: ServerReadableStream<unknown, unknown>, callback: sendUnaryData<unknown>) =>
          this.track(serveClientStream(open(call), call, callback, clientStream, idleMs));
      } else if (!method.requestStream && method.responseStream) {
        const serverStream = handler as ServerStreamHandler<unknown, unknown>;
        impl[key] = (call: ServerWritableStream<unknown, unknown>) =>
          this.track(serveServerStream(open(call), call, serverStream, idleMs));
      } else {
        throw new Error(`${name}: ${method.path} is bidirectional streaming, which is not served`);
      }
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

  /**
   * Resolves once every handler still running has finished, or after `timeoutMs`. A drain that cut calls
   * off leaves their handlers running (e.g. storing what an upload delivered): a service awaits this
   * before it closes what they use.
   */
  async settled(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    await Promise.race([Promise.allSettled([...this.inFlight]), timeout]);
    clearTimeout(timer);
  }

  private track(p: Promise<void>): void {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }
}

async function serveUnary(
  scope: CallScope,
  call: ServerUnaryCall<unknown, unknown>,
  callback: sendUnaryData<unknown>,
  handler: UnaryHandler<unknown, unknown>,
): Promise<void> {
  let response: unknown;
  try {
    response = await scope.run(() => handler(call.request, scope.ctx));
  } catch (err) {
    callback(scope.fail(err));
    return;
  }
  scope.succeed();
  callback(null, response);
}

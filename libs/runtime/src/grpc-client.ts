import {
  ChannelCredentials,
  Client,
  Metadata,
  status as GrpcStatus,
  type ClientReadableStream,
  type ClientWritableStream,
  type ServiceError,
  type StatusObject,
} from '@grpc/grpc-js';
import { context, propagation } from '@opentelemetry/api';
import { currentRequestId } from './context.js';
import { metadataKeys, writeIdentity, type Identity } from './identity.js';
import { metadataSetter } from './propagation.js';
import type { Telemetry } from './telemetry.js';
import type { TlsFiles } from './tls.js';

/** A method of a ts-proto service definition. */
export interface MethodDefinition<Req, Res> {
  path: string;
  requestSerialize: (value: Req) => Buffer;
  responseDeserialize: (value: Buffer) => Res;
}

export interface CallOptions {
  /** Overrides the client's default deadline. */
  timeoutMs?: number;
  identity?: Identity;
  requestId?: string;
}

/**
 * A client-streaming call in progress: messages go out with `write`, which waits while grpc-js's
 * buffer is full (so the caller never produces faster than the service takes), then `end()`.
 */
export interface ClientStreamCall<Req, Res> {
  /**
   * Sends one message; resolves once grpc-js can take another (after 'drain' when its buffer was
   * full). Rejects with the call's error when the call failed meanwhile; after an early successful
   * answer, the message is dropped and it resolves.
   */
  write(message: Req): Promise<void>;
  /** No more messages (half-close); the answer follows in `response`. */
  end(): void;
  /** The service's answer, or its error (a ServiceError), whenever it comes: possibly before `end()`. */
  readonly response: Promise<Res>;
  /** Whether `response` has settled. */
  readonly settled: boolean;
  /** Cancels the call (the service sees CANCELLED); `response` rejects with CANCELLED unless already settled. */
  cancel(): void;
}

/**
 * A server-streaming call in progress: its messages, decoded, in order. Iterating pulls from grpc-js,
 * so a consumer that stops pulling stops the service through HTTP/2 flow control. The iteration ends
 * when the service finishes with OK and throws its error (a ServiceError) otherwise.
 */
export interface ServerStreamCall<Res> extends AsyncIterable<Res> {
  /** Cancels the call; an iteration in progress throws CANCELLED. */
  cancel(): void;
}

export interface RpcClientOptions {
  address: string;
  tls: TlsFiles;
  /** Deadline for every call unless the call names its own. */
  defaultTimeoutMs: number;
  maxMessageBytes: number;
  telemetry?: Telemetry;
}

const identityBytes = (b: Buffer) => b;

/**
 * One channel to an internal service over mutual TLS. Every call has a deadline, carries the request
 * id, trace context and (when given) the caller's identity, and waits for the channel to be ready
 * within that deadline, so a service that restarts is reached again without the caller retrying.
 */
export class RpcClient {
  private readonly client: Client;

  constructor(private readonly opts: RpcClientOptions) {
    const creds = ChannelCredentials.createSsl(opts.tls.ca, opts.tls.key, opts.tls.cert);
    this.client = new Client(opts.address, creds, {
      'grpc.max_receive_message_length': opts.maxMessageBytes,
      'grpc.max_send_message_length': opts.maxMessageBytes,
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 2000,
    });
  }

  /** A typed call through a generated method definition. */
  async call<Req, Res>(method: MethodDefinition<Req, Res>, request: Req, options: CallOptions = {}): Promise<Res> {
    const bytes = await this.callRaw(method.path, method.requestSerialize(request), options);
    return method.responseDeserialize(bytes);
  }

  /** A call with an already encoded request; the gateway forwards client payloads this way. */
  callRaw(path: string, payload: Uint8Array, options: CallOptions = {}): Promise<Buffer> {
    const md = this.metadata(options);
    const deadline = this.deadline(options);
    const done = this.recorder(path);
    return new Promise((resolve, reject) => {
      // grpc-js captures the caller's stack (`new Error()`) on every call, for the rare error it may
      // end with ("for call at …"): about a tenth of the client's CPU per unary call. The call is
      // known without it (its method and request id are in the lines that log a failure, with the
      // trace id), so the capture is off while grpc-js starts the call. Errors made later keep their
      // stack; one grpc-js makes while starting the call (e.g. serializing) has none.
      const stackTraceLimit = Error.stackTraceLimit;
      Error.stackTraceLimit = 0;
      try {
        this.client.makeUnaryRequest(
          path,
          identityBytes,
          identityBytes,
          Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength),
          md,
          { deadline },
          (err: ServiceError | null, value?: Buffer) => {
            done(err ? err.code : GrpcStatus.OK);
            if (err) reject(err);
            else resolve(value ?? Buffer.alloc(0));
          },
        );
      } finally {
        Error.stackTraceLimit = stackTraceLimit;
      }
    });
  }

  /**
   * A client-streaming call (e.g. BlobService.Upload) with the same metadata and deadline as `call`.
   * For long transfers give `timeoutMs` fit for the whole transfer.
   *
   * @example
   * const upload = blob.clientStream(BlobServiceService.upload, { identity, timeoutMs: 600_000 });
   * await upload.write({ kind: { $case: 'begin', value: begin } });
   * for await (const chunk of chunks) await upload.write({ kind: { $case: 'chunk', value: chunk } });
   * upload.end();
   * const answer = await upload.response;
   */
  clientStream<Req, Res>(method: MethodDefinition<Req, Res>, options: CallOptions = {}): ClientStreamCall<Req, Res> {
    const done = this.recorder(method.path);
    let settled = false;
    let failure: ServiceError | undefined;
    let stream!: ClientWritableStream<Req>;
    const response = new Promise<Res>((resolve, reject) => {
      stream = this.client.makeClientStreamRequest<Req, Res>(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        this.metadata(options),
        { deadline: this.deadline(options) },
        (err: ServiceError | null, value?: Res) => {
          settled = true;
          done(err ? err.code : GrpcStatus.OK);
          if (err) {
            failure = err;
            reject(err);
          } else {
            resolve(value as Res);
          }
        },
      );
    });
    // The answer is the caller's to await; an unobserved rejection must not crash the process.
    response.catch(() => undefined);
    // grpc-js reports a write that failed (the call ended) as an 'error' event as well as in the
    // callback; `response` carries it.
    stream.on('error', () => undefined);
    // Each write waits for one of these: its own 'drain' or the end of the call.
    let wake: (() => void) | undefined;
    const wakeWriter = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    stream.on('drain', wakeWriter);
    void response.then(wakeWriter, wakeWriter);
    return {
      write: (message) => {
        if (failure) return Promise.reject(failure);
        if (settled) return Promise.resolve();
        if (stream.write(message)) return Promise.resolve();
        return new Promise<void>((resolve, reject) => {
          wake = () => (failure ? reject(failure) : resolve());
        });
      },
      end: () => {
        if (!settled && !stream.writableEnded) stream.end();
      },
      response,
      get settled() {
        return settled;
      },
      cancel: () => stream.cancel(),
    };
  }

  /**
   * A server-streaming call (e.g. BlobService.Download) with the same metadata and deadline as
   * `call`. For long transfers give `timeoutMs` fit for the whole transfer.
   *
   * @example
   * for await (const message of blob.serverStream(BlobServiceService.download, { blobId }, { identity })) { … }
   */
  serverStream<Req, Res>(
    method: MethodDefinition<Req, Res>,
    request: Req,
    options: CallOptions = {},
  ): ServerStreamCall<Res> {
    const done = this.recorder(method.path);
    const stream: ClientReadableStream<Res> = this.client.makeServerStreamRequest<Req, Res>(
      method.path,
      method.requestSerialize,
      method.responseDeserialize,
      request,
      this.metadata(options),
      { deadline: this.deadline(options) },
    );
    let finished = false;
    stream.on('status', (status: StatusObject) => {
      finished = true;
      done(status.code);
    });
    // Without a listener an error status would be an uncaught 'error' event; the iteration throws it.
    let failure: unknown;
    stream.on('error', (err: unknown) => {
      failure ??= err;
    });
    return {
      cancel: () => stream.cancel(),
      async *[Symbol.asyncIterator]() {
        try {
          for await (const message of stream as AsyncIterable<Res>) yield message;
        } catch (err) {
          throw failure ?? err;
        } finally {
          // A consumer that stops early (break, throw) must not leave the service sending.
          if (!finished) stream.cancel();
        }
        // grpc-js ends the stream before it emits an error status: the iteration may end cleanly first.
        if (failure) throw failure;
      },
    };
  }

  close(): void {
    this.client.close();
  }

  /** Request id, caller identity and trace context, as every call carries them. */
  private metadata(options: CallOptions): Metadata {
    // waitForReady: a call made while the service restarts waits (within its deadline) instead of failing.
    const md = new Metadata({ waitForReady: true });
    const requestId = options.requestId ?? currentRequestId();
    if (requestId) md.set(metadataKeys.requestId, requestId);
    if (options.identity) writeIdentity(md, options.identity);
    propagation.inject(context.active(), md, metadataSetter);
    return md;
  }

  private deadline(options: CallOptions): number {
    return Date.now() + (options.timeoutMs ?? this.opts.defaultTimeoutMs);
  }

  /** Starts timing a call; the function it returns records its duration and status once. */
  private recorder(path: string): (code: GrpcStatus) => void {
    const started = performance.now();
    let recorded = false;
    return (code) => {
      if (recorded) return;
      recorded = true;
      this.opts.telemetry?.rpcClientDuration.record((performance.now() - started) / 1000, {
        method: path,
        code: GrpcStatus[code] ?? String(code),
      });
    };
  }
}

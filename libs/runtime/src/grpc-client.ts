import { ChannelCredentials, Client, Metadata, status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
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
    // waitForReady: a call made while the service restarts waits (within its deadline) instead of failing.
    const md = new Metadata({ waitForReady: true });
    const requestId = options.requestId ?? currentRequestId();
    if (requestId) md.set(metadataKeys.requestId, requestId);
    if (options.identity) writeIdentity(md, options.identity);
    propagation.inject(context.active(), md, metadataSetter);
    const deadline = Date.now() + (options.timeoutMs ?? this.opts.defaultTimeoutMs);
    const started = performance.now();
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        path,
        identityBytes,
        identityBytes,
        Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength),
        md,
        { deadline },
        (err: ServiceError | null, value?: Buffer) => {
          const code = err ? err.code : GrpcStatus.OK;
          this.opts.telemetry?.rpcClientDuration.record((performance.now() - started) / 1000, {
            method: path,
            code: GrpcStatus[code] ?? String(code),
          });
          if (err) reject(err);
          else resolve(value ?? Buffer.alloc(0));
        },
      );
    });
  }

  close(): void {
    this.client.close();
  }
}

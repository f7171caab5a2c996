import { status as GrpcStatus } from '@grpc/grpc-js';
import { events, type QUICConnection, type QUICStream } from '@matrixai/quic';
import { ClientFrame, ServerFrame, type Request } from '@qpq/proto';
import { requestScope, toGrpcStatus, type Logger } from '@qpq/runtime';
import {
  CloseCode,
  connectionEnd,
  describeCloseCode,
  describeConnectionEnd,
  encodeServerPushFrame,
  FRAME_HEADER_BYTES,
  FrameStream,
  on,
  WriteBacklogError,
  type ConnectionEnd,
  type FrameStreamEnd,
} from '@qpq/wire';
import { randomUUID } from 'node:crypto';
import { trace } from '@opentelemetry/api';
import { Attachment } from './attachment.js';
import type { AppContext } from './context.js';
import type { Dispatch } from './dispatch.js';
import {
  AnswerTooLargeError,
  printable,
  ShuttingDownError,
  TooManyFileStreamsError,
  TooManyRequestsError,
} from './errors.js';
import { serveFileStream } from './file-stream.js';
import { envelopeAcceptedAtMs } from './push-acceptance.js';
import { routeOf } from './routes.js';

const edgeTracer = trace.getTracer('qpq-gateway');

/** A client must open its stream (by sending its first request) within this long after the handshake. */
const STREAM_OPEN_TIMEOUT_MS = 30_000;

/** The client's first bidirectional stream is its session stream; every later one is a file stream. */
const SESSION_STREAM_ID = 0;

/**
 * One client's QUIC connection: its long-lived session stream of frames, the requests in flight on
 * it, the session it is attached to, and its file streams (one QUIC stream per file transfer). A
 * client that breaks the protocol (oversized or undecodable frame) is cut off alone, with an
 * application close code that says why.
 */
export class ClientConnection {
  readonly id: string;
  readonly remote: string;
  private frames: FrameStream | undefined;
  private readonly attachment: Attachment;
  private readonly logger: Logger;
  private inFlight = 0;
  /** File streams open (being read, refused or served). */
  private fileStreams = 0;
  private idleWaiters: (() => void)[] = [];
  private draining = false;
  private gone = false;
  private stopping: Promise<void> | undefined;
  private readonly streamTimer: NodeJS.Timeout;
  /** Resolves once the connection is fully stopped. */
  readonly stopped: Promise<void>;

  constructor(
    private readonly conn: QUICConnection,
    private readonly ctx: AppContext,
    private readonly dispatch: Dispatch,
  ) {
    this.id = conn.connectionId.toString().slice(0, 16);
    this.remote = `${conn.remoteHost}:${conn.remotePort}`;
    this.logger = ctx.logger.child({ conn: this.id, remote: this.remote });
    this.attachment = new Attachment(ctx, this.logger, (bytes) => this.push(bytes));
    ctx.metrics.connections.add(1);

    let end: ConnectionEnd | undefined;
    on(conn, events.EventQUICConnectionError, (e) => {
      // Dispatched more than once for an idle timeout: the first one tells why.
      if (end) return;
      end = connectionEnd(e.detail);
      this.logger.debug({ how: describeConnectionEnd(end) }, 'connection ended');
      this.release(closeReason(end));
    });
    this.stopped = new Promise<void>((resolve) =>
      on(
        conn,
        events.EventQUICConnectionStopped,
        () => {
          this.release('stopped');
          resolve();
        },
        { once: true },
      ),
    );
    on(conn, events.EventQUICConnectionStream, (e) => {
      // Told apart by id, not by order: a client's file stream may reach us before its session
      // stream has carried anything (QUIC shows a stream only once data crossed it).
      if (Number(e.detail.streamId) !== SESSION_STREAM_ID || this.frames) {
        this.acceptFileStream(e.detail);
        return;
      }
      clearTimeout(this.streamTimer);
      this.frames = new FrameStream(e.detail, {
        maxFrameBytes: ctx.cfg.maxFrameBytes,
        onFrame: (frame) => this.onFrame(frame),
        onEnd: (streamEnd) => this.onStreamEnd(streamEnd),
      });
    });
    this.streamTimer = setTimeout(
      () => this.kick(CloseCode.PROTOCOL_VIOLATION, 'no stream opened'),
      STREAM_OPEN_TIMEOUT_MS,
    );
    this.streamTimer.unref();
  }

  get identity() {
    return this.attachment.current;
  }

  /**
   * Ends the connection gracefully: new requests and file streams are refused with UNAVAILABLE,
   * those in flight are answered and running transfers finish (until `deadline`), then our side of
   * the session stream is finished and the connection closed with `code` (SHUTTING_DOWN while the
   * gateway drains).
   */
  drain(deadline: number, code: CloseCode = CloseCode.SHUTTING_DOWN): Promise<void> {
    this.draining = true;
    if (this.gone && !this.stopping) return Promise.race([this.stopped, sleep(deadline - Date.now())]);
    this.stopping ??= (async () => {
      await Promise.race([this.whenIdle(), sleep(deadline - Date.now())]);
      await Promise.race([this.frames?.closeWrite(), sleep(deadline - Date.now())]);
      const stop = this.conn.stop({
        isApp: true,
        errorCode: code,
        reason: Buffer.from(describeCloseCode(code)),
        force: false,
      });
      // A graceful stop waits for the client to finish its side too; past the deadline, cut it.
      const left = deadline - Date.now();
      const finished = await Promise.race([stop.then(() => true), sleep(left).then(() => false)]);
      if (!finished) {
        this.conn.destroyStreams();
        await Promise.race([stop, sleep(1_000)]);
      }
    })().catch((err: unknown) => this.logger.warn({ err }, 'connection did not close cleanly'));
    return this.stopping;
  }

  /** Closes the connection at once with an application error code, e.g. after a protocol violation. */
  kick(code: CloseCode, reason: string): void {
    if (this.gone || this.stopping) return;
    this.logger.warn({ code, reason }, `closing client connection: ${describeCloseCode(code)}`);
    this.ctx.metrics.connectionsClosed.add(1, { reason: closeCodeLabel(code) });
    this.release(undefined);
    this.stopping = this.conn
      .stop({ isApp: true, errorCode: code, reason: Buffer.from(reason.slice(0, 200)), force: true })
      .catch((err: unknown) => this.logger.debug({ err }, 'stop after kick failed'));
  }

  /** A file stream: served beside the session stream, counted against QPQ_MAX_FILE_STREAMS. */
  private acceptFileStream(stream: QUICStream): void {
    const { ctx } = this;
    this.fileStreams++;
    ctx.metrics.fileStreams.add(1);
    void serveFileStream(stream, {
      ctx,
      logger: this.logger,
      attachment: this.attachment,
      refusal: () => {
        if (this.gone || this.draining) return new ShuttingDownError();
        // This stream is among those counted.
        if (this.fileStreams > ctx.cfg.maxFileStreams) return new TooManyFileStreamsError(ctx.cfg.maxFileStreams);
        return undefined;
      },
      kick: (code, reason) => this.kick(code, reason),
    }).finally(() => {
      this.fileStreams--;
      ctx.metrics.fileStreams.add(-1);
      this.wakeIfIdle();
    });
  }

  private onFrame(bytes: Uint8Array): void {
    const { metrics, cfg } = this.ctx;
    metrics.frameCells.bytesIn.add(FRAME_HEADER_BYTES + bytes.byteLength);
    let request: Request;
    try {
      const frame = ClientFrame.decode(bytes);
      if (frame.kind?.$case !== 'request') throw new Error('not a request');
      request = frame.kind.value;
    } catch {
      this.kick(CloseCode.MALFORMED_FRAME, 'undecodable client frame');
      return;
    }
    metrics.frameCells.requestsIn.add(1);
    if (this.gone || this.draining) {
      this.respondWithError(request.id, request.method, new ShuttingDownError(), performance.now());
    } else if (this.inFlight >= cfg.maxRequestsInFlight) {
      this.respondWithError(
        request.id,
        request.method,
        new TooManyRequestsError(cfg.maxRequestsInFlight),
        performance.now(),
      );
    } else {
      void this.handle(request);
    }
  }

  private async handle(request: Request): Promise<void> {
    const started = performance.now();
    const requestId = randomUUID();
    this.inFlight++;
    try {
      // One span per client request: its trace id goes into every log line and, through the gRPC
      // metadata, to the backend that serves it.
      const answer = await requestScope.run({ requestId }, () =>
        edgeTracer.startActiveSpan(
          'qpq.edge.request',
          { attributes: { 'rpc.method': printable(request.method) } },
          (span) => this.dispatch(request, this.attachment, requestId).finally(() => span.end()),
        ),
      );
      this.respond(request.id, request.method, GrpcStatus.OK, '', answer, started);
    } catch (err) {
      requestScope.run({ requestId }, () => this.respondWithError(request.id, request.method, err, started));
    } finally {
      this.inFlight--;
      this.wakeIfIdle();
    }
  }

  private respondWithError(id: number, method: string, err: unknown, started: number): void {
    const { code, details } = toGrpcStatus(err);
    if (code === GrpcStatus.INTERNAL) this.logger.error({ err, method: printable(method) }, 'request failed');
    this.respond(id, method, code, details, new Uint8Array(), started);
  }

  private respond(
    id: number,
    method: string,
    code: GrpcStatus,
    message: string,
    payload: Uint8Array,
    started: number,
  ): void {
    const { cfg, metrics } = this.ctx;
    let bytes = ServerFrame.encode({
      kind: { $case: 'response', value: { id, status: { code, message }, payload } },
    }).finish();
    if (bytes.byteLength > cfg.maxFrameBytes) {
      const err = new AnswerTooLargeError(bytes.byteLength, cfg.maxFrameBytes);
      this.logger.warn({ method: printable(method), bytes: bytes.byteLength }, 'answer larger than the frame limit');
      code = err.code;
      bytes = ServerFrame.encode({
        kind: { $case: 'response', value: { id, status: { code, message: err.message }, payload: new Uint8Array() } },
      }).finish();
    }
    metrics.requestDuration.record((performance.now() - started) / 1000, {
      method: this.knownMethodLabel(method),
      code: GrpcStatus[code] ?? String(code),
    });
    this.send(bytes, 'response');
  }

  /** A device's push from NATS, forwarded as it came (it is an encoded Push). */
  private push(pushBytes: Uint8Array): void {
    if (this.gone || !this.frames) return;
    const frame = encodeServerPushFrame(pushBytes);
    if (frame.byteLength > this.ctx.cfg.maxFrameBytes) {
      // The device still gets the envelope: a push is a hint, and it fetches by seq.
      this.ctx.metrics.pushesDropped.add(1, { reason: 'too_large' });
      this.logger.warn({ bytes: frame.byteLength }, 'push larger than the frame limit dropped');
      return;
    }
    this.send(frame, 'push', envelopeAcceptedAtMs(pushBytes));
  }

  /** Sends a frame; for an envelope's push, `acceptedAtMs` is when delivery accepted it (push latency). */
  private send(frame: Uint8Array, kind: 'response' | 'push', acceptedAtMs?: number): void {
    const frames = this.frames;
    if (!frames || this.gone) return;
    frames.send(frame).then(
      () => {
        const { metrics } = this.ctx;
        const cells = metrics.frameCells;
        (kind === 'push' ? cells.pushesOut : cells.responsesOut).add(1);
        cells.bytesOut.add(FRAME_HEADER_BYTES + frame.byteLength);
        // Clamped: with the delivery host's clock ahead of ours, the difference can come out negative.
        if (acceptedAtMs !== undefined) metrics.pushLatency.record(Math.max(0, Date.now() - acceptedAtMs) / 1000);
      },
      (err: unknown) => {
        if (err instanceof WriteBacklogError) {
          if (kind === 'push') this.ctx.metrics.pushesDropped.add(1, { reason: 'slow_reader' });
          this.kick(CloseCode.SLOW_READER, err.message);
        }
        // Otherwise the stream is already gone; the connection's close event does the rest.
      },
    );
  }

  private onStreamEnd(end: FrameStreamEnd): void {
    if (end.kind === 'frame-too-large') {
      this.kick(CloseCode.FRAME_TOO_LARGE, end.error.message);
    } else if (end.kind === 'truncated') {
      this.kick(CloseCode.PROTOCOL_VIOLATION, `stream ended inside a frame (${end.pendingBytes} bytes pending)`);
    } else if (end.kind === 'eof') {
      // The client is done sending: answer what is in flight, then close.
      void this.drain(Date.now() + this.ctx.cfg.rpcTimeoutMs, CloseCode.NORMAL);
    }
    // 'error': the connection is going away; its error event does the rest.
  }

  /** Resolves when no request is in flight and no file stream open. */
  private whenIdle(): Promise<void> {
    if (this.inFlight === 0 && this.fileStreams === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private wakeIfIdle(): void {
    if (this.inFlight === 0 && this.fileStreams === 0) for (const wake of this.idleWaiters.splice(0)) wake();
  }

  /** Lets go of everything the connection holds (once): push subscription, timers, the gauge. */
  private release(reason: string | undefined): void {
    if (this.gone) return;
    this.gone = true;
    clearTimeout(this.streamTimer);
    this.attachment.close();
    this.ctx.metrics.connections.add(-1);
    if (reason) this.ctx.metrics.connectionsClosed.add(1, { reason });
    for (const wake of this.idleWaiters.splice(0)) wake();
  }

  private knownMethodLabel(method: string): string {
    // Metric labels must stay few: a client can send any string as a method.
    return routeOf(method) ? method : 'unknown';
  }
}

function closeReason(end: ConnectionEnd): string {
  if (end.by === 'idle') return 'idle_timeout';
  if (end.by === 'tls') return 'tls';
  if (end.by === 'peer') return 'client_closed';
  return end.isApp && end.code !== undefined ? closeCodeLabel(end.code) : 'other';
}

function closeCodeLabel(code: number): string {
  const name = Object.entries(CloseCode).find(([, v]) => v === code)?.[0];
  return name ? name.toLowerCase() : 'other';
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)).unref());
}

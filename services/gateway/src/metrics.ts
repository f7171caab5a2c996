import type { Counter, Histogram, UpDownCounter } from '@opentelemetry/api';
import type { Telemetry } from '@qpq/runtime';
import { QUIC_ERROR_KINDS } from './quic-errors.js';
import { TalliedCounter, type CounterCell } from './tallied-counter.js';

/** The series of the per-frame counters, bound once (several adds per message; see TalliedCounter). */
export interface FrameCells {
  requestsIn: CounterCell;
  responsesOut: CounterCell;
  pushesOut: CounterCell;
  bytesIn: CounterCell;
  bytesOut: CounterCell;
}

/** What an SRE watches on a gateway (calls to the backends are in qpq_rpc_client_duration_seconds). */
export class GatewayMetrics {
  /** Client connections open now. */
  readonly connections: UpDownCounter;
  /** Frames by direction (in/out) and kind (request/response/push). */
  readonly frames: TalliedCounter;
  /** Connections closed, by reason (peer, idle, frame_too_large, malformed_frame, shutting_down, …). */
  readonly connectionsClosed: Counter;
  /** Client requests from frame in to response out, by method and status code. */
  readonly requestDuration: Histogram;
  /** Pushes not delivered (too large for a frame, or the client stopped reading). */
  readonly pushesDropped: Counter;
  /** File streams open now. */
  readonly fileStreams: UpDownCounter;
  /** File bytes through file streams, by direction (in: uploaded, out: downloaded). */
  readonly fileBytes: Counter;
  /** File streams ended, by kind (upload/download) and outcome (ok, a status code's name, client_reset, …). */
  readonly fileStreamsEnded: Counter;
  /** Connections attached to a session now (their device's pushes come down them). */
  readonly sessions: UpDownCounter;
  /** Bytes of session-stream frames (length prefix included), by direction; file streams are in fileBytes. */
  readonly frameBytes: TalliedCounter;
  /** The series of frames and frameBytes that every message touches. */
  readonly frameCells: FrameCells;
  /** QUIC-level failures, by kind (handshake, connection, stream: see quic-errors.ts). */
  readonly quicErrors: Counter;
  /** From the delivery service's acceptance of an envelope to its push written to the client's stream. */
  readonly pushLatency: Histogram;

  constructor(telemetry: Telemetry) {
    const meter = telemetry.meter;
    this.connections = meter.createUpDownCounter('qpq_gateway_connections', {
      description: 'Client QUIC connections currently open',
    });
    this.frames = new TalliedCounter(meter, 'qpq_gateway_frames_total', {
      description: 'Frames received from and sent to clients, by direction and kind',
    });
    this.connectionsClosed = meter.createCounter('qpq_gateway_connections_closed_total', {
      description: 'Client connections closed, by reason',
    });
    this.requestDuration = meter.createHistogram('qpq_gateway_request_duration_seconds', {
      description: 'Client requests from frame received to response sent, by method and status code',
      advice: { explicitBucketBoundaries: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] },
    });
    this.pushesDropped = meter.createCounter('qpq_gateway_pushes_dropped_total', {
      description: 'Pushes not forwarded to a client (the device fetches instead), by reason',
    });
    this.fileStreams = meter.createUpDownCounter('qpq_gateway_file_streams', {
      description: 'File streams (uploads and downloads) currently open',
    });
    this.fileBytes = meter.createCounter('qpq_gateway_file_bytes_total', {
      description: 'File bytes received from (in) and sent to (out) clients on file streams',
    });
    this.fileStreamsEnded = meter.createCounter('qpq_gateway_file_streams_total', {
      description: 'File streams ended, by kind (upload, download) and outcome',
    });
    this.sessions = meter.createUpDownCounter('qpq_gateway_sessions', {
      description: 'Client connections currently attached to a session',
    });
    this.frameBytes = new TalliedCounter(meter, 'qpq_gateway_frame_bytes_total', {
      description:
        'Bytes of frames received from (in) and sent to (out) clients on session streams, length prefix included',
    });
    this.frameCells = {
      requestsIn: this.frames.cell({ direction: 'in', kind: 'request' }),
      responsesOut: this.frames.cell({ direction: 'out', kind: 'response' }),
      pushesOut: this.frames.cell({ direction: 'out', kind: 'push' }),
      bytesIn: this.frameBytes.cell({ direction: 'in' }),
      bytesOut: this.frameBytes.cell({ direction: 'out' }),
    };
    this.quicErrors = meter.createCounter('qpq_gateway_quic_errors_total', {
      description:
        'QUIC failures, by kind: handshake (TLS), connection (a transport error code, or the library failing), ' +
        'stream (failed by the library, or reset by the client with an error code)',
    });
    this.pushLatency = telemetry.histogramSeconds(
      'qpq_gateway_push_latency_seconds',
      'From the delivery service accepting an envelope to its push written to the client (clocks of both hosts)',
    );
    // Present (at 0) from start, so rates and alerts see every series.
    this.sessions.add(0);
    this.connections.add(0);
    this.fileStreams.add(0);
    for (const reason of ['too_large', 'slow_reader'] as const) this.pushesDropped.add(0, { reason });
    this.frameCells.bytesIn.add(0);
    this.frameCells.bytesOut.add(0);
    for (const kind of QUIC_ERROR_KINDS) this.quicErrors.add(0, { kind });
  }
}

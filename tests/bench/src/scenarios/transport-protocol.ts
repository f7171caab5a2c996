// What the transport scenarios' clients and their server process (transport-server.ts) agree on.
// Every connection carries length-prefixed frames (@qpq/wire framing, as the gateway's session
// stream does), on one of two kinds of listener:
// - rpc: each frame is a ClientFrame request; it is answered at once with the ServerFrame the
//   gateway sends for a method it does not know (UNIMPLEMENTED, empty payload): the gateway's own
//   cheapest answer, needing no backend.
// - sink: frames are counted and dropped; when the client finishes its side (FIN / TCP end) the
//   server answers one frame, the summary (frames and payload bytes, two u64 BE), and ends.
import { ClientFrame, ServerFrame } from '@qpq/proto';

/** A method no gateway routes: the gateway answers it itself, UNIMPLEMENTED, without a backend. */
export const UNROUTED_METHOD = '/qpq.bench.v1.Transport/RoundTrip';
/** gRPC status UNIMPLEMENTED, what the gateway answers UNROUTED_METHOD with. */
export const UNIMPLEMENTED = 12;
export const SUMMARY_BYTES = 16;

/** The answer to a request frame, as the gateway gives it to a method it does not route. */
export function answerRequest(frame: Uint8Array): Uint8Array {
  const decoded = ClientFrame.decode(frame);
  if (decoded.kind?.$case !== 'request') throw new Error('not a request');
  const { id, method } = decoded.kind.value;
  return ServerFrame.encode({
    kind: {
      $case: 'response',
      value: { id, status: { code: UNIMPLEMENTED, message: `unknown method ${method}` }, payload: new Uint8Array() },
    },
  }).finish();
}

export interface SinkSummary {
  frames: number;
  bytes: number;
}

export function encodeSummary(s: SinkSummary): Uint8Array {
  const out = Buffer.alloc(SUMMARY_BYTES);
  out.writeBigUInt64BE(BigInt(s.frames), 0);
  out.writeBigUInt64BE(BigInt(s.bytes), 8);
  return out;
}

export function decodeSummary(frame: Uint8Array): SinkSummary {
  if (frame.byteLength !== SUMMARY_BYTES) throw new Error(`a sink summary of ${frame.byteLength} bytes`);
  const b = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  return { frames: Number(b.readBigUInt64BE(0)), bytes: Number(b.readBigUInt64BE(8)) };
}

/** The ports the server process listens on, printed as one JSON line on its stdout. */
export interface TransportPorts {
  /** UDP: QUIC with the gateway's transport config (libs/wire quicTransportConfig), rpc and sink. */
  quicRpc: number;
  quicSink: number;
  /** TCP: TLS 1.3, rpc and sink. */
  tlsRpc: number;
  tlsSink: number;
}

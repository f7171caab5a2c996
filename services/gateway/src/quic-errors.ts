import { errors } from '@matrixai/quic';
import { connectionEnd } from '@qpq/wire';

/** The `kind` label of qpq_gateway_quic_errors_total. */
export type QuicErrorKind = 'handshake' | 'connection' | 'stream';
export const QUIC_ERROR_KINDS: readonly QuicErrorKind[] = ['handshake', 'connection', 'stream'];

/**
 * What a connection's end says about the QUIC layer: `handshake` for a TLS failure (a client without
 * our ALPN, a bad certificate), `connection` for a transport error (a QUIC error code other than
 * NO_ERROR, from either side, or the library failing). A close with an application code, an idle
 * timeout and a NO_ERROR close are how connections normally end: qpq_gateway_connections_closed_total
 * counts those by reason.
 */
export function connectionErrorKind(err: unknown): QuicErrorKind | undefined {
  const end = connectionEnd(err);
  switch (end.by) {
    case 'tls':
      return 'handshake';
    case 'idle':
      return undefined;
    case 'other':
      return 'connection';
    default:
      return !end.isApp && end.code !== undefined && end.code !== 0 ? 'connection' : undefined;
  }
}

/**
 * `stream` for a stream the library failed, or one the peer reset with an error code. Every stream
 * of a closing connection is reset with code 0 (and qpq's clients cancel a transfer with code 0,
 * which qpq_gateway_file_streams_total{outcome="client_reset"} counts), so those are not errors.
 */
export function streamErrorKind(err: unknown): QuicErrorKind | undefined {
  if (err instanceof errors.ErrorQUICStreamInternal) return 'stream';
  if (err instanceof errors.ErrorQUICStreamPeerRead || err instanceof errors.ErrorQUICStreamPeerWrite) {
    const code = (err as { data?: { code?: number } }).data?.code;
    return code !== undefined && code !== 0 ? 'stream' : undefined;
  }
  return undefined;
}

import { errors } from '@matrixai/quic';
import { describeCloseCode } from './close-codes.js';

type Listener = (event: Event) => void;
type Target = {
  addEventListener(type: string, cb: Listener, opts?: { once?: boolean }): void;
  removeEventListener(type: string, cb: Listener): void;
};

/**
 * Typed addEventListener for @matrixai/quic events: they are dispatched under their class name and
 * the library types listeners as plain EventListener. Returns a function that removes the listener.
 */
export function on<E extends Event>(
  target: Target,
  eventClass: { name: string; prototype: E },
  listener: (event: E) => void,
  opts?: { once?: boolean },
): () => void {
  const cb = listener as Listener;
  target.addEventListener(eventClass.name, cb, opts);
  return () => target.removeEventListener(eventClass.name, cb);
}

/** How a QUIC connection ended, as far as the library tells. */
export interface ConnectionEnd {
  /** 'peer': the other side closed it; 'local': we did; 'idle': nothing heard within the idle timeout. */
  by: 'peer' | 'local' | 'idle' | 'tls' | 'other';
  isApp: boolean;
  code: number | undefined;
  reason: string;
}

/** Reads the close details out of an `EventQUICConnectionError`'s detail. */
export function connectionEnd(err: unknown): ConnectionEnd {
  const data = (err as { data?: { isApp?: boolean; errorCode?: number; reason?: Uint8Array } }).data;
  const reason = data?.reason ? Buffer.from(data.reason).toString('utf8') : '';
  if (err instanceof errors.ErrorQUICConnectionPeerTLS || err instanceof errors.ErrorQUICConnectionLocalTLS) {
    return { by: 'tls', isApp: false, code: data?.errorCode, reason: reason || (err as Error).message };
  }
  if (err instanceof errors.ErrorQUICConnectionPeer) {
    return { by: 'peer', isApp: data?.isApp ?? false, code: data?.errorCode, reason };
  }
  if (err instanceof errors.ErrorQUICConnectionLocal) {
    return { by: 'local', isApp: data?.isApp ?? false, code: data?.errorCode, reason };
  }
  if (err instanceof errors.ErrorQUICConnectionIdleTimeout) {
    return { by: 'idle', isApp: false, code: undefined, reason: 'idle timeout' };
  }
  return { by: 'other', isApp: false, code: undefined, reason: err instanceof Error ? err.message : String(err) };
}

/** One line for logs: "peer closed: malformed frame (app code 2)". */
export function describeConnectionEnd(end: ConnectionEnd): string {
  if (end.by === 'idle') return 'idle timeout';
  const what = end.isApp && end.code !== undefined ? describeCloseCode(end.code) : end.reason || 'closed';
  const code = end.code === undefined ? '' : ` (${end.isApp ? 'app' : 'transport'} code ${end.code})`;
  const detail = end.isApp && end.reason && end.reason !== what ? `: ${end.reason}` : '';
  return `${end.by === 'tls' ? 'TLS failure' : `${end.by} closed`}: ${what}${detail}${code}`;
}

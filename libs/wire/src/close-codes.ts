/**
 * Application error codes a qpq peer closes a QUIC connection with (CONNECTION_CLOSE with
 * isApp = true). Both sides use them: the gateway to tell a client why it was cut off, the client to
 * tell the gateway it is done.
 */
export const CloseCode = {
  /** Done talking; nothing went wrong. */
  NORMAL: 0,
  /** A frame's length prefix was over the receiver's QPQ_MAX_FRAME_BYTES. */
  FRAME_TOO_LARGE: 1,
  /** A frame did not decode as the expected ClientFrame / ServerFrame. */
  MALFORMED_FRAME: 2,
  /** The gateway is draining (SIGTERM); reconnect, possibly to another gateway. */
  SHUTTING_DOWN: 3,
  /** The gateway holds as many connections as it is configured for; try again later. */
  TOO_MANY_CONNECTIONS: 4,
  /** The peer stopped reading and its unsent frames passed the backlog limit. */
  SLOW_READER: 5,
  /** Something else against the protocol, e.g. no stream opened in time or a stream ended mid-frame. */
  PROTOCOL_VIOLATION: 6,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

const descriptions: Record<number, string> = {
  [CloseCode.NORMAL]: 'closed',
  [CloseCode.FRAME_TOO_LARGE]: 'frame too large',
  [CloseCode.MALFORMED_FRAME]: 'malformed frame',
  [CloseCode.SHUTTING_DOWN]: 'server is shutting down',
  [CloseCode.TOO_MANY_CONNECTIONS]: 'server is full',
  [CloseCode.SLOW_READER]: 'peer is not reading',
  [CloseCode.PROTOCOL_VIOLATION]: 'protocol violation',
};

/** A few words for a close code, for logs and error messages. */
export function describeCloseCode(code: number): string {
  return descriptions[code] ?? `application code ${code}`;
}

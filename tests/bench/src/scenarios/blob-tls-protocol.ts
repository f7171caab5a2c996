// What the TLS baselines' client (blob-tls-baseline.ts) and server (blob-tls-server.ts, its own
// process) agree on. One transfer per connection: the client sends a 9-byte header, an op byte and a
// u64 BE length. UPLOAD: `length` bytes follow; once all arrived the server answers one byte (ACK) and
// keeps them. DOWNLOAD: the server writes back the bytes of the last upload (`length` must be their
// size), then ends the connection.

export const OP_UPLOAD = 0x55; // 'U'
export const OP_DOWNLOAD = 0x44; // 'D'
export const ACK = 0x01;
export const HEADER_BYTES = 9;

/** The header of a transfer of `length` bytes. */
export function transferHeader(op: typeof OP_UPLOAD | typeof OP_DOWNLOAD, length: number): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  header[0] = op;
  header.writeBigUInt64BE(BigInt(length), 1);
  return header;
}

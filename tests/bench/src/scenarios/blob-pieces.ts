// Bytes in memory handed over the way a file read in fixed-size reads would be.

/** `data` in pieces of `size` bytes (views, not copies); the last may be shorter. */
export async function* piecesOf(data: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < data.length; at += size) yield data.subarray(at, at + size);
}

/** The 11-byte signature that starts Postgres's binary COPY format. */
const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

/**
 * The bytes of each row's single field from a `COPY … TO STDOUT (FORMAT binary)` stream, in order, as
 * pieces of the chunks that arrive (no field is ever gathered in one buffer). The format: a header
 * (signature, flags, extension area), then per row a 16-bit field count and per field a 32-bit length
 * and the bytes; a field count of -1 ends it.
 */
export async function* binaryCopyFields(chunks: AsyncIterable<Buffer>): AsyncGenerator<Uint8Array> {
  let carry = Buffer.alloc(0);
  // What the parser waits for next, and how many bytes of it are still to come.
  let state: 'header' | 'extension' | 'count' | 'length' | 'field' | 'done' = 'header';
  let need = SIGNATURE.length + 8;
  for await (const chunk of chunks) {
    let at = 0;
    while (at < chunk.length && state !== 'done') {
      if (state === 'field') {
        const take = Math.min(need, chunk.length - at);
        yield chunk.subarray(at, at + take);
        at += take;
        need -= take;
        if (need === 0) [state, need] = ['count', 2];
        continue;
      }
      // Fixed-size parts may straddle chunks: gathered in `carry` (at most 19 bytes).
      const take = Math.min(need - carry.length, chunk.length - at);
      carry = Buffer.concat([carry, chunk.subarray(at, at + take)]);
      at += take;
      if (carry.length < need) continue;
      const part = carry;
      carry = Buffer.alloc(0);
      switch (state) {
        case 'header': {
          if (!part.subarray(0, SIGNATURE.length).equals(SIGNATURE)) throw new Error('not a binary COPY stream');
          const extension = part.readUInt32BE(SIGNATURE.length + 4);
          [state, need] = extension > 0 ? ['extension', extension] : ['count', 2];
          break;
        }
        case 'extension':
          [state, need] = ['count', 2];
          break;
        case 'count': {
          const fields = part.readInt16BE(0);
          if (fields === -1) [state, need] = ['done', 0];
          else if (fields === 1) [state, need] = ['length', 4];
          else throw new Error(`a binary COPY row of ${fields} fields, not 1`);
          break;
        }
        case 'length': {
          const length = part.readInt32BE(0);
          if (length < 0) throw new Error('a binary COPY field is NULL');
          [state, need] = length > 0 ? ['field', length] : ['count', 2];
          break;
        }
      }
    }
  }
  if (state !== 'done') throw new Error('the binary COPY stream ended early');
}

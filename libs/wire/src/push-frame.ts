/** `ServerFrame.push` is field 2, length-delimited: tag (2 << 3) | 2. */
const PUSH_FIELD_TAG = 0x12;

/**
 * An encoded `ServerFrame { push }` around an already encoded `Push`, without decoding it: the
 * gateway forwards what the delivery service published byte for byte, unknown fields included.
 * Equal to `ServerFrame.encode({ kind: { $case: 'push', value: Push.decode(pushBytes) } })` for
 * a Push this code knows.
 */
export function encodeServerPushFrame(pushBytes: Uint8Array): Uint8Array {
  const length = pushBytes.byteLength;
  const header: number[] = [PUSH_FIELD_TAG];
  let n = length;
  while (n > 0x7f) {
    header.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  header.push(n);
  const out = new Uint8Array(header.length + length);
  out.set(header, 0);
  out.set(pushBytes, header.length);
  return out;
}

import { Push } from '@qpq/proto';

/** An encoded Push opens with its one oneof field's tag: envelope is field 1, length-delimited ((1 << 3) | 2). */
const ENVELOPE_TAG = 0x0a;
/** Envelope.accepted_at_ms: field 6, varint ((6 << 3) | 0). */
const ACCEPTED_AT_TAG = 0x30;
/** Wire types (protobuf encoding). */
const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;

/**
 * Varints of up to this many bytes (49 bits) are read as plain numbers; a time in ms fits in 6. Longer
 * ones (a negative int64 takes 10) send the push to the full decoder, which settles them exactly.
 */
const MAX_FAST_VARINT_BYTES = 7;

/** The scan met something it does not read itself; the full decoder decides. */
const SLOW_PATH = -1;

/**
 * When the delivery service accepted the envelope a Push carries (ms since the epoch), or undefined
 * for any other push. Every push of a message comes through here, so the envelope is not decoded
 * (strings, copies, bigints): a scan reads the envelope's tags and lengths and only the one varint
 * it needs. Pushes of any other shape go to the generated decoder, so the answer is the decoder's.
 */
export function envelopeAcceptedAtMs(pushBytes: Uint8Array): number | undefined {
  if (pushBytes[0] !== ENVELOPE_TAG) return undefined;
  const fast = scanPush(pushBytes);
  if (fast !== SLOW_PATH) return fast > 0 ? fast : undefined;
  return decodedAcceptedAtMs(pushBytes);
}

/** The reference: the generated decoder (kept for what the scan leaves to it). */
export function decodedAcceptedAtMs(pushBytes: Uint8Array): number | undefined {
  try {
    const push = Push.decode(pushBytes);
    if (push.kind?.$case !== 'envelope' || push.kind.value.acceptedAtMs <= 0n) return undefined;
    return Number(push.kind.value.acceptedAtMs);
  } catch {
    return undefined;
  }
}

/**
 * accepted_at_ms (0 when absent) of a push that is exactly one well-formed envelope field, or SLOW_PATH
 * for anything else (several fields, groups, truncation, long varints): the decoder settles those.
 */
function scanPush(bytes: Uint8Array): number {
  const reader = new Scanner(bytes, 1);
  const length = reader.varint();
  if (length === SLOW_PATH || reader.pos + length !== bytes.length) return SLOW_PATH;
  let acceptedAtMs = 0;
  while (reader.pos < bytes.length) {
    const tag = reader.varint();
    if (tag === SLOW_PATH || tag < 8) return SLOW_PATH;
    if (tag === ACCEPTED_AT_TAG) {
      // The last occurrence wins, as in the decoder.
      acceptedAtMs = reader.varint();
      if (acceptedAtMs === SLOW_PATH) return SLOW_PATH;
    } else if (!reader.skip(tag & 7)) {
      return SLOW_PATH;
    }
  }
  return acceptedAtMs;
}

/** Reads varints and skips fields of a protobuf message from `pos`. */
class Scanner {
  constructor(
    private readonly bytes: Uint8Array,
    public pos: number,
  ) {}

  /** A varint of at most MAX_FAST_VARINT_BYTES as a number, or SLOW_PATH (longer, or truncated). */
  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < MAX_FAST_VARINT_BYTES && this.pos < this.bytes.length; i++) {
      const byte = this.bytes[this.pos++]!;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 128;
    }
    return SLOW_PATH;
  }

  /** Skips one field's value of `wireType`; false for what the scan leaves to the decoder (groups, truncation). */
  skip(wireType: number): boolean {
    let length: number;
    if (wireType === VARINT) return this.varint() !== SLOW_PATH;
    if (wireType === FIXED64) length = 8;
    else if (wireType === FIXED32) length = 4;
    else if (wireType === LENGTH_DELIMITED) length = this.varint();
    else return false;
    if (length === SLOW_PATH || this.pos + length > this.bytes.length) return false;
    this.pos += length;
    return true;
  }
}

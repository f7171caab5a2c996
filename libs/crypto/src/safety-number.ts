// Safety numbers: a number two people compare (read aloud, or side by side) to check that the server
// showed each of them the other's real identity keys. The scheme follows Signal's numeric fingerprint,
// extended to accounts with several devices.
//
// Format (version 0):
//   keys        = the account's distinct identity keys (raw Ed25519, 32 bytes each), sorted bytewise
//                 and concatenated
//   hash_0      = version (u16 big-endian, 0) || keys || UTF-8(address)
//   hash_i      = SHA-512(hash_{i-1} || keys), for i = 1 .. 5200
//   fingerprint = hash_5200[0..30) as six 5-byte chunks; each chunk, read as a big-endian integer,
//                 mod 100000 and zero-padded to 5 digits: 30 digits per account
//   number      = the two fingerprints, the one of the address that sorts first (UTF-16 code units)
//                 first: 60 digits, shown as 12 groups of 5 separated by single spaces.
// Both people get the same number whatever the argument order, and it changes whenever any device
// key of either account changes, is added or is removed. The 5200 iterations make it costly to grind
// for another key set that gives the same number.
import { createHash } from 'node:crypto';
import { encodeUtf8 } from './bytes.js';
import { ED25519_KEY_LENGTH } from './ed25519.js';
import { CryptoUsageError } from './errors.js';
import { addressProblem } from './identity.js';

/** One side of a safety number: the account and the identity keys of all its active devices. */
export interface SafetyNumberAccount {
  /** "user@domain", as the directory spells it. */
  address: string;
  /** Raw Ed25519 identity keys, one per device; order does not matter, duplicates count once. */
  identityKeys: Uint8Array[];
}

const FINGERPRINT_VERSION = 0;
const ITERATIONS = 5200;
const CHUNKS = 6;
const CHUNK_BYTES = 5;
const GROUP_DIGITS = 5;

/**
 * The safety number of two accounts: 60 digits in 12 groups of 5, the same for both sides whatever
 * the argument order.
 * @example safetyNumber({ address: 'alice@example.org', identityKeys: [k1, k2] }, { address: 'bob@example.net', identityKeys: [k3] })
 */
export function safetyNumber(a: SafetyNumberAccount, b: SafetyNumberAccount): string {
  const fa = accountFingerprint(a);
  const fb = accountFingerprint(b);
  // Comparing a number with oneself is pointless, but the tie-break on digits keeps it symmetric.
  const aFirst = a.address !== b.address ? a.address < b.address : fa <= fb;
  const digits = aFirst ? fa + fb : fb + fa;
  return digits.match(new RegExp(`\\d{${GROUP_DIGITS}}`, 'g'))!.join(' ');
}

/** The 30-digit half of one account. */
function accountFingerprint({ address, identityKeys }: SafetyNumberAccount): string {
  const problem = addressProblem(address);
  if (problem !== undefined) throw new CryptoUsageError(`safety number: ${problem}`);
  if (!Array.isArray(identityKeys) || identityKeys.length === 0) {
    throw new CryptoUsageError(`safety number: ${address} has no identity keys`);
  }
  for (const key of identityKeys) {
    // A fixed length keeps "keys || address" unambiguous without length prefixes.
    if (!(key instanceof Uint8Array) || key.length !== ED25519_KEY_LENGTH) {
      throw new CryptoUsageError(`safety number: identity keys must be ${ED25519_KEY_LENGTH}-byte Ed25519 keys`);
    }
  }
  const distinct = new Map(identityKeys.map((k) => [Buffer.from(k).toString('hex'), k]));
  const sorted = [...distinct.values()].sort((x, y) => Buffer.compare(x, y));
  const keys = Buffer.concat(sorted);

  const version = Buffer.alloc(2);
  version.writeUInt16BE(FINGERPRINT_VERSION);
  let hash: Buffer = Buffer.concat([version, keys, encodeUtf8(address)]);
  for (let i = 0; i < ITERATIONS; i++) hash = createHash('sha512').update(hash).update(keys).digest();

  let digits = '';
  for (let chunk = 0; chunk < CHUNKS; chunk++) {
    const value = hash.readUIntBE(chunk * CHUNK_BYTES, CHUNK_BYTES) % 100_000;
    digits += value.toString().padStart(GROUP_DIGITS, '0');
  }
  return digits;
}

// Signed tree heads of the key-transparency log (ktlog.proto SignedTreeHead): the log's Ed25519
// signature over (size, root, time), so that a client can hold the log to every head it was shown.
import { sign, type KeyObject } from 'node:crypto';
import type { SignedTreeHead } from '@qpq/proto';
import { bytesEqual, encodeUtf8 } from './bytes.js';
import { ed25519RawPublicKey } from './delivery-proof.js';
import { ed25519Verify } from './ed25519.js';
import { CryptoUsageError } from './errors.js';

const DOMAIN_SEPARATOR = encodeUtf8('qpq-kt-tree-head-v1');
const ROOT_HASH_LENGTH = 32;
const U64_MAX = 2n ** 64n - 1n;
const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

export interface TreeHeadFields {
  treeSize: bigint | number;
  rootHash: Uint8Array;
  timestampMs: bigint | number;
}

/**
 * The bytes the log signs: utf8 "qpq-kt-tree-head-v1" || u64 BE tree_size || root_hash (32) ||
 * i64 BE timestamp_ms. Throws CryptoUsageError for a root that is not 32 bytes or a number out of range.
 */
export function treeHeadBytes({ treeSize, rootHash, timestampMs }: TreeHeadFields): Uint8Array {
  if (rootHash.length !== ROOT_HASH_LENGTH) throw new CryptoUsageError('tree head root hash must be 32 bytes');
  const size = BigInt(treeSize);
  if (size < 0n || size > U64_MAX) throw new CryptoUsageError('tree size out of range');
  const timestamp = BigInt(timestampMs);
  if (timestamp < I64_MIN || timestamp > I64_MAX) throw new CryptoUsageError('tree head timestamp out of range');
  const out = new Uint8Array(DOMAIN_SEPARATOR.length + 8 + ROOT_HASH_LENGTH + 8);
  const view = new DataView(out.buffer);
  out.set(DOMAIN_SEPARATOR, 0);
  let offset = DOMAIN_SEPARATOR.length;
  view.setBigUint64(offset, size);
  offset += 8;
  out.set(rootHash, offset);
  offset += ROOT_HASH_LENGTH;
  view.setBigInt64(offset, timestamp);
  return out;
}

/** Signs a tree head with the log's Ed25519 key; the head carries the raw public key. */
export function signTreeHead(privateKey: KeyObject, fields: TreeHeadFields): SignedTreeHead {
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new CryptoUsageError('tree heads are signed with Ed25519');
  const head = {
    treeSize: BigInt(fields.treeSize),
    rootHash: new Uint8Array(fields.rootHash),
    timestampMs: BigInt(fields.timestampMs),
  };
  return {
    ...head,
    signature: new Uint8Array(sign(null, treeHeadBytes(head), privateKey)),
    logPublicKey: ed25519RawPublicKey(privateKey),
  };
}

/**
 * True when the head's signature verifies under its log key, which must equal expectedLogKey when
 * given (pass the pinned key: otherwise anyone can sign a head). Never throws: malformed is false.
 */
export function verifyTreeHead(head: SignedTreeHead, expectedLogKey?: Uint8Array): boolean {
  try {
    if (expectedLogKey !== undefined && !bytesEqual(head.logPublicKey, expectedLogKey)) return false;
    return ed25519Verify(head.logPublicKey, treeHeadBytes(head), head.signature);
  } catch {
    return false;
  }
}

// MLS groups as pure functions over state bytes: each call decodes the state, acts, and returns new
// state bytes; the input is never changed, so a caller that fails to persist simply retries from the
// old state. A member who commits (addMembers) must keep its old state until the delivery service has
// accepted the commit, and only then switch to the returned state.
import { randomBytes } from 'node:crypto';
import {
  acceptAll,
  type ClientState,
  createApplicationMessage,
  createCommit,
  createGroup as mlsCreateGroup,
  defaultCapabilities,
  defaultLifetime,
  emptyPskIndex,
  encodeMlsMessage,
  generateKeyPackageWithKey,
  joinGroup,
  type PrivateMessage,
  type Proposal,
  processMessage as mlsProcessMessage,
  zeroOutUint8Array,
} from 'ts-mls';
import { bytesEqual, copyBytes, encodeUtf8, toHex } from './bytes.js';
import { clientConfig } from './client-config.js';
import type { DeviceKeys } from './device-keys.js';
import {
  CryptoError,
  CryptoFormatError,
  CryptoUsageError,
  MessageRejectedError,
  NoMatchingKeyPackageError,
} from './errors.js';
import { parseDeviceIdentity } from './identity.js';
import { decodePrivateKeyPackage, type KeyPackageBundle, readKeyPackage } from './key-packages.js';
import { decodeMlsMessageExact } from './mls-message.js';
import { decodeState, encodeState } from './group-state.js';
import { type GroupMember, leafIdentity, memberIdentities, memberKeys } from './roster.js';
import { CIPHERSUITE_NAME, cipherSuite } from './suite.js';
import { decryptSenderData, MlsError, UsageError } from './ts-mls-internals.js';

/** Encoded MLS group state of one device; persist it after every call that returns a new one. */
export type GroupStateBytes = Uint8Array;

const DEFAULT_GROUP_ID_LENGTH = 32;
const MAX_GROUP_ID_LENGTH = 255;

/**
 * A new group (epoch 0) whose only member is this device.
 * @param groupId defaults to 32 random bytes
 */
export async function createGroup(
  keys: DeviceKeys,
  identity: string,
  groupId: Uint8Array = randomBytes(DEFAULT_GROUP_ID_LENGTH),
): Promise<{ state: GroupStateBytes; groupId: Uint8Array }> {
  requireDeviceIdentity(identity);
  if (groupId.length === 0 || groupId.length > MAX_GROUP_ID_LENGTH) {
    throw new CryptoUsageError(`group id must be 1 to ${MAX_GROUP_ID_LENGTH} bytes`);
  }
  const cs = await cipherSuite();
  const id = new Uint8Array(groupId); // own copy: the state keeps a reference to it
  // The creator's leaf comes from a KeyPackage that is never published; its init key is never used.
  const { publicPackage, privatePackage } = await generateKeyPackageWithKey(
    { credentialType: 'basic', identity: encodeUtf8(identity) },
    defaultCapabilities(),
    defaultLifetime,
    [],
    { signKey: keys.signaturePrivateKey, publicKey: keys.signaturePublicKey },
    cs,
  );
  const state = await mlsCreateGroup(id, publicPackage, privatePackage, [], cs, clientConfig).catch(
    rethrowAs(CryptoUsageError),
  );
  zeroOutUint8Array(privatePackage.initPrivateKey);
  return { state: encodeState(state), groupId: copyBytes(id) };
}

/**
 * Commits the addition of devices, given their KeyPackages as uploaded (MLSMessage bytes). The commit
 * goes to the current members; the Welcome (which carries the ratchet tree) to the new ones.
 * Throws CryptoFormatError for a KeyPackage that fails inspectKeyPackage's checks or that MLS refuses.
 */
export async function addMembers(
  state: GroupStateBytes,
  keyPackages: Uint8Array[],
): Promise<{ state: GroupStateBytes; commit: Uint8Array; welcome: Uint8Array }> {
  if (keyPackages.length === 0) throw new CryptoUsageError('no KeyPackages to add');
  const cs = await cipherSuite();
  const current = decodeState(state);
  const identities = new Set(memberIdentities(current.ratchetTree));
  const proposals: Proposal[] = [];
  for (const [i, bytes] of keyPackages.entries()) {
    const { keyPackage, identity } = await readKeyPackage(copyBytes(bytes), cs).catch((err: unknown) => {
      throw new CryptoFormatError(`KeyPackage ${i}: ${(err as Error).message}`, { cause: err });
    });
    if (identities.has(identity)) throw new CryptoUsageError(`${identity} is already in the group`);
    identities.add(identity);
    proposals.push({ proposalType: 'add', add: { keyPackage } });
  }
  const result = await createCommit(
    { state: current, cipherSuite: cs },
    { extraProposals: proposals, ratchetTreeExtension: true },
  ).catch(rethrowAs(CryptoFormatError));
  if (result.welcome === undefined) throw new CryptoError('commit adding members produced no Welcome');
  const welcome = encodeMlsMessage({ version: 'mls10', wireformat: 'mls_welcome', welcome: result.welcome });
  const commit = encodeMlsMessage(result.commit);
  result.consumed.forEach(zeroOutUint8Array);
  return { state: encodeState(result.newState), commit, welcome };
}

/**
 * Joins a group from a Welcome, using whichever of this device's KeyPackages it was made for. The
 * caller must then delete that bundle (usedRef): KeyPackages are single-use and MLS keeps no record.
 */
export async function joinFromWelcome(
  welcome: Uint8Array,
  findKeyPackage: (refHex: string) => KeyPackageBundle | undefined,
): Promise<{ state: GroupStateBytes; groupId: Uint8Array; usedRef: string }> {
  const message = decodeMlsMessageExact(copyBytes(welcome));
  if (message.wireformat !== 'mls_welcome')
    throw new CryptoFormatError(`expected a Welcome, got ${message.wireformat}`);
  if (message.welcome.cipherSuite !== CIPHERSUITE_NAME) {
    throw new CryptoFormatError(`Welcome uses ciphersuite ${message.welcome.cipherSuite}`);
  }
  let usedRef: string | undefined;
  let bundle: KeyPackageBundle | undefined;
  for (const secrets of message.welcome.secrets) {
    usedRef = toHex(secrets.newMember);
    bundle = findKeyPackage(usedRef);
    if (bundle !== undefined) break;
  }
  if (bundle === undefined || usedRef === undefined) {
    throw new NoMatchingKeyPackageError('the Welcome is for none of the KeyPackages this device holds');
  }
  const cs = await cipherSuite();
  const { keyPackage, ref } = await readKeyPackage(copyBytes(bundle.publicBytes), cs);
  if (ref !== usedRef) throw new CryptoUsageError(`bundle returned for ${usedRef} holds KeyPackage ${ref}`);
  const privateKeys = decodePrivateKeyPackage(copyBytes(bundle.privateBytes));
  const joined = await joinGroup(
    message.welcome,
    keyPackage,
    privateKeys,
    emptyPskIndex,
    cs,
    undefined,
    undefined,
    clientConfig,
  ).catch(rethrowAs(MessageRejectedError));
  return { state: encodeState(joined), groupId: copyBytes(joined.groupContext.groupId), usedRef };
}

/** Encrypts an application message for the group. The sender cannot decrypt it later: keep the plaintext. */
export async function encryptMessage(
  state: GroupStateBytes,
  plaintext: Uint8Array,
): Promise<{ state: GroupStateBytes; message: Uint8Array }> {
  const cs = await cipherSuite();
  const current = decodeState(state);
  const result = await createApplicationMessage(current, copyBytes(plaintext), cs).catch(rethrowAs(CryptoUsageError));
  const message = encodeMlsMessage({
    version: 'mls10',
    wireformat: 'mls_private_message',
    privateMessage: result.privateMessage,
  });
  result.consumed.forEach(zeroOutUint8Array);
  return { state: encodeState(result.newState), message };
}

/**
 * Decrypts an application message or applies a commit from another member. A message MLS refuses
 * (replay, unknown epoch, bad signature, another group, a standalone proposal) throws MessageRejectedError;
 * undecodable bytes throw CryptoFormatError.
 */
export async function processMessage(
  state: GroupStateBytes,
  message: Uint8Array,
): Promise<
  | { state: GroupStateBytes; kind: 'application'; plaintext: Uint8Array; senderIdentity: string }
  | { state: GroupStateBytes; kind: 'commit'; epoch: bigint }
> {
  const cs = await cipherSuite();
  const current = decodeState(state);
  const decoded = decodeMlsMessageExact(copyBytes(message));
  if (decoded.wireformat !== 'mls_private_message' && decoded.wireformat !== 'mls_public_message') {
    throw new CryptoFormatError(`expected a group message, got ${decoded.wireformat}`);
  }
  const { groupId, contentType } =
    decoded.wireformat === 'mls_private_message' ? decoded.privateMessage : decoded.publicMessage.content;
  if (!bytesEqual(groupId, current.groupContext.groupId))
    throw new MessageRejectedError('message is for another group');
  // Proposals by reference are not used in qpq; accepting one would let any member queue changes
  // that the next committer silently includes.
  if (contentType === 'proposal') throw new MessageRejectedError('standalone proposals are not accepted');
  if (contentType === 'application' && decoded.wireformat === 'mls_public_message') {
    throw new MessageRejectedError('application data must be encrypted');
  }

  const result = await mlsProcessMessage(decoded, current, emptyPskIndex, acceptAll, cs).catch(
    rethrowAs(MessageRejectedError, true),
  );
  try {
    if (result.kind === 'applicationMessage') {
      if (decoded.wireformat !== 'mls_private_message')
        throw new MessageRejectedError('unexpected public application message');
      const senderIdentity = await applicationSender(current, decoded.privateMessage);
      return {
        state: encodeState(result.newState),
        kind: 'application',
        plaintext: copyBytes(result.message),
        senderIdentity,
      };
    }
    return { state: encodeState(result.newState), kind: 'commit', epoch: result.newState.groupContext.epoch };
  } finally {
    result.consumed.forEach(zeroOutUint8Array);
  }
}

/**
 * Who sent an application message ts-mls has just accepted. ts-mls does not return the sender, so read
 * the leaf index from the message's sender data (encrypted under the epoch's sender-data secret and
 * authenticated by the content signature ts-mls verified) and look that leaf up in the epoch's tree.
 */
async function applicationSender(state: ClientState, message: PrivateMessage): Promise<string> {
  const cs = await cipherSuite();
  const epochData =
    message.epoch === state.groupContext.epoch
      ? { senderDataSecret: state.keySchedule.senderDataSecret, ratchetTree: state.ratchetTree }
      : state.historicalReceiverData.get(message.epoch);
  const senderData = epochData && (await decryptSenderData(message, epochData.senderDataSecret, cs));
  const identity = senderData && epochData && leafIdentity(epochData.ratchetTree, senderData.leafIndex);
  if (identity === undefined) throw new MessageRejectedError('cannot tell who sent the message');
  return identity;
}

/** Group id, epoch, member identities (leaf order) and this device's identity. Synchronous. */
export function groupInfo(state: GroupStateBytes): {
  groupId: Uint8Array;
  epoch: bigint;
  members: string[];
  ownIdentity: string;
} {
  const current = decodeState(state);
  const ownIdentity = leafIdentity(current.ratchetTree, current.privatePath.leafIndex);
  if (ownIdentity === undefined) throw new CryptoFormatError('group state has no own leaf');
  return {
    groupId: copyBytes(current.groupContext.groupId),
    epoch: current.groupContext.epoch,
    members: memberIdentities(current.ratchetTree),
    ownIdentity,
  };
}

/**
 * Every member's identity and signature key (leaf order). The identity in a credential is whatever the
 * member who added that leaf wrote: check the key against the directory before trusting the name.
 */
export function groupMembers(state: GroupStateBytes): GroupMember[] {
  return memberKeys(decodeState(state).ratchetTree);
}

function requireDeviceIdentity(identity: string): void {
  try {
    parseDeviceIdentity(identity);
  } catch (err) {
    throw new CryptoUsageError(`not a device identity: ${JSON.stringify(identity)}`, { cause: err });
  }
}

/**
 * Maps ts-mls errors onto ours: its UsageError is the caller's mistake; its other errors (validation,
 * codec, signature) become `as`. With `everything`, non-ts-mls failures (e.g. a WebCrypto AEAD failure
 * on a tampered ciphertext) become `as` too; our own errors always pass through.
 */
function rethrowAs(as: new (message: string, options?: { cause?: unknown }) => CryptoError, everything = false) {
  return (err: unknown): never => {
    if (err instanceof CryptoError) throw err;
    if (err instanceof UsageError) throw new CryptoUsageError(err.message, { cause: err });
    if (err instanceof MlsError || everything)
      throw new as(err instanceof Error ? err.message : String(err), { cause: err });
    throw err;
  };
}

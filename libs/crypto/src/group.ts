// MLS groups as pure functions over state bytes: each call decodes the state, acts, and returns new
// state bytes; the input is never changed, so a caller that fails to persist simply retries from the
// old state. Commits this member makes are in commits.ts.
import { randomBytes } from 'node:crypto';
import {
  type ClientState,
  createApplicationMessage,
  createGroup as mlsCreateGroup,
  defaultCapabilities,
  defaultLifetime,
  emptyPskIndex,
  encodeMlsMessage,
  generateKeyPackageWithKey,
  type IncomingMessageCallback,
  joinGroup,
  type PrivateMessage,
  type Proposal,
  processMessage as mlsProcessMessage,
  zeroOutUint8Array,
} from 'ts-mls';
import { bytesEqual, copyBytes, encodeUtf8, toHex } from './bytes.js';
import { clientConfig } from './client-config.js';
import type { DeviceKeys } from './device-keys.js';
import { requireOnlyReportedChanges, rosterChange } from './commit-report.js';
import { CryptoFormatError, CryptoUsageError, MessageRejectedError, NoMatchingKeyPackageError } from './errors.js';
import { decodeState, decodeStateContext, encodeState, type GroupStateBytes } from './group-state.js';
import { parseDeviceIdentity } from './identity.js';
import { decodePrivateKeyPackage, type KeyPackageBundle, readKeyPackage } from './key-packages.js';
import { rethrowAs } from './mls-errors.js';
import { decodeMlsMessageExact } from './mls-message.js';
import { type GroupMember, leafIdentity, memberIdentities, memberKeys } from './roster.js';
import { CIPHERSUITE_NAME, cipherSuite } from './suite.js';
import { decryptSenderData } from './ts-mls-internals.js';

export type { GroupStateBytes } from './group-state.js';

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

/** What processMessage returns for a Commit. */
export interface CommitProcessed {
  state: GroupStateBytes;
  kind: 'commit';
  /** The epoch the group entered with this Commit. */
  epoch: bigint;
  /** Device identities the Commit added, then removed (this device included when removedSelf). */
  added: string[];
  removed: string[];
  /**
   * This device was removed. It cannot follow the group any further: the caller must drop the group
   * (its state and pending commits). `state` is then the state of the epoch before the Commit, marked
   * removed so that sending or committing from it throws CryptoUsageError; `epoch` is still the one
   * the others entered.
   */
  removedSelf: boolean;
}

/**
 * Decrypts an application message or applies a commit from another member, reporting who the commit
 * added and removed. A message MLS refuses (replay, unknown epoch, a commit for an epoch already left,
 * bad signature, another group, a standalone proposal, a commit that renames or re-keys a member)
 * throws MessageRejectedError; undecodable bytes throw CryptoFormatError. A commit that removes this
 * device does not throw: it returns removedSelf.
 */
export async function processMessage(
  state: GroupStateBytes,
  message: Uint8Array,
): Promise<
  { state: GroupStateBytes; kind: 'application'; plaintext: Uint8Array; senderIdentity: string } | CommitProcessed
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

  // ts-mls shows the proposals of a commit only to this callback, once the commit's signature and
  // proposals have been checked; keep them to report the change. A commit removing this device is
  // declined here: the device cannot derive the next epoch anyway, and ts-mls 1.6.4 only notices its
  // removal when no Add in the same commit refills the leaf (otherwise it fails looking for a path key).
  let committed: Proposal[] = [];
  let removedSelf = false;
  const ownLeaf = current.privatePath.leafIndex;
  const readCommit: IncomingMessageCallback = (incoming) => {
    if (incoming.kind !== 'commit') return 'accept';
    committed = incoming.proposals.map((p) => p.proposal);
    removedSelf = committed.some((p) => p.proposalType === 'remove' && p.remove.removed === ownLeaf);
    return removedSelf ? 'reject' : 'accept';
  };
  const result = await mlsProcessMessage(decoded, current, emptyPskIndex, readCommit, cs).catch(
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
    const change = rosterChange(current.ratchetTree, committed);
    const report = { kind: 'commit' as const, added: change.added, removed: change.removed };
    if (removedSelf) {
      // The declined commit left the state in its epoch; mark it so ts-mls refuses to send from it.
      const removedState: ClientState = { ...result.newState, groupActiveState: { kind: 'removedFromGroup' } };
      return { ...report, state: encodeState(removedState), epoch: current.groupContext.epoch + 1n, removedSelf: true };
    }
    requireOnlyReportedChanges(current.ratchetTree, result.newState.ratchetTree, change);
    return {
      ...report,
      state: encodeState(result.newState),
      epoch: result.newState.groupContext.epoch,
      removedSelf: false,
    };
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

/** The group's current epoch, read from the front of the state without decoding tree or keys. */
export function groupEpoch(state: GroupStateBytes): bigint {
  return decodeStateContext(state).epoch;
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

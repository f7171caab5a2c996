// @qpq/crypto: the client-side crypto core (MLS over ts-mls with the X-Wing suite, padding, delivery
// proofs) as pure functions over serializable state.
export { CIPHERSUITE_NAME, cipherSuite } from './suite.js';
export { type DeviceKeys, generateDeviceKeys, encodeDeviceKeys, decodeDeviceKeys } from './device-keys.js';
export { deviceIdentity, normalizeUsername, parseDeviceIdentity, USERNAME_RULE } from './identity.js';
export { type KeyPackageBundle, generateKeyPackages, inspectKeyPackage } from './key-packages.js';
export {
  type CommitProcessed,
  type GroupStateBytes,
  createGroup,
  joinFromWelcome,
  encryptMessage,
  processMessage,
  groupInfo,
  groupEpoch,
  groupMembers,
} from './group.js';
export { type CommitResult, type GroupChanges, addMembers, commitChanges, updateKeys } from './commits.js';
export { type SafetyNumberAccount, safetyNumber } from './safety-number.js';
export type { GroupMember } from './roster.js';
export { type Framing, peekFraming } from './framing.js';
export { padToBucket, unpad, bucketSize } from './padding.js';
export { decodePayload, mlsPayload, payloadFraming, welcomePayload } from './e2e-payload.js';
export {
  type DeliveryProofFields,
  deliveryProofBytes,
  ed25519RawPublicKey,
  payloadHash,
  signDeliveryProof,
  verifyDeliveryProof,
} from './delivery-proof.js';
export { type KtEntryFields, encodeLogEntry } from './kt-entry.js';
export { type TreeHeadFields, signTreeHead, treeHeadBytes, verifyTreeHead } from './tree-head.js';
export {
  CryptoError,
  CryptoFormatError,
  NoMatchingKeyPackageError,
  CryptoUsageError,
  MessageRejectedError,
} from './errors.js';
export * from './file-encryption.js';

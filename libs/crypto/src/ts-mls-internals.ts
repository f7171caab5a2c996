// The few ts-mls 1.6.4 functions we need that its index does not export. They are reached through the
// package's "./*.js" exports map and are not @public, so a ts-mls upgrade may move them: this is the
// one file to fix when it does.
export { makeKeyPackageRef, verifyKeyPackage } from 'ts-mls/keyPackage.js';
export { verifyLeafNodeSignatureKeyPackage } from 'ts-mls/leafNode.js';
export { decryptSenderData } from 'ts-mls/privateMessage.js';
export { MlsError, UsageError } from 'ts-mls/mlsError.js';
export { decodeGroupContext } from 'ts-mls/groupContext.js';

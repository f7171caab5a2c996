// The qpq client SDK: what the CLI, the integration tests and the benchmark drive the system with.
export { QpqClient, DEFAULT_SERVER, MAX_TEXT_BYTES } from './client.js';
export type { QpqClientOptions, QpqClientEvents, AccountInfo, SentMessage } from './client.js';
export type * from './views.js';
export { resolveCa, devCaPath, type ResolvedCa } from './ca.js';
export { parseServerAddress, type ServerAddress } from './gateway-session.js';
export { LocalStore, STORE_FILES, type StoreOptions } from './store.js';
export type { StoreDocument, OutboxEntry, HistoryEntry, AccountRecord } from './store-document.js';
export {
  Outbox,
  OutboxRejectedError,
  enqueueWithRetry,
  isRefusal,
  DEFAULT_RETRY,
  type RetryPolicy,
  type EnqueueOutcome,
} from './outbox.js';
export * from './errors.js';
export type { KeyLogAudit, KeyLogEntry } from './key-transparency.js';
export { FileTooLargeError, MAX_FILE_BYTES, type ProgressListener } from './file-transfer.js';

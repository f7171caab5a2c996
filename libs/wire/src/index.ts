// QUIC framing shared by the gateway and the client SDK.
export * from './close-codes.js';
export * from './events.js';
export {
  DEFAULT_FILE_STALL_TIMEOUT_MS,
  type Download,
  type DownloadOptions,
  type UploadOptions,
} from './file-transfer.js';
export * from './first-frame.js';
export * from './frame-stream.js';
export * from './framing.js';
export * from './gateway-connection.js';
export * from './push-frame.js';
export * from './quic-config.js';
export * from './rpc-error.js';

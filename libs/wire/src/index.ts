// QUIC framing shared by the gateway and the client SDK.
export * from './close-codes.js';
export * from './events.js';
export * from './frame-stream.js';
export * from './framing.js';
export * from './gateway-connection.js';
export * from './push-frame.js';
export * from './quic-config.js';
export * from './rpc-error.js';

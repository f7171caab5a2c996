export * from './audit.js';
export * from './config.js';
export * from './context.js';
export * from './errors.js';
export * from './grpc-client.js';
export { CancelledError, requireGateway, requireIdentity, type CallContext } from './grpc-call.js';
export * from './grpc-server.js';
export {
  StreamIdleTimeoutError,
  type ClientStreamHandler,
  type ResponseStream,
  type ServerStreamHandler,
} from './grpc-streaming.js';
export * from './host.js';
export * from './http.js';
export * from './identity.js';
export * from './logger.js';
export * from './main.js';
export * from './periodic-task.js';
export * from './service-config.js';
export * from './telemetry.js';
export * from './tls.js';

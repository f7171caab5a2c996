export { callGateway, gatewayCaller, rpcCaller, type CallMethod, type RequestChannel } from './call-method.js';
export { makeDevCerts, type CertFiles, type DevCerts } from './certs.js';
export { devCaPath, devDir } from './dev-dir.js';
export { messagesDuring } from './messages-during.js';
export { metricValue } from './metric-value.js';
export { ensureNatsServer, startNats, type NatsHandle, type NatsOptions } from './nats.js';
export {
  defaultServiceCommand,
  fixedPortNeeds,
  TestNetwork,
  type BackendName,
  type ServiceName,
  type TestNetworkOptions,
} from './network.js';
export {
  existingDevice,
  LIGHT_KEY_STRETCHING,
  newDevice,
  opaqueBeginLogin,
  opaqueLogin,
  opaqueRegister,
  type BegunLogin,
  type KeyStretching,
  type LoginDevice,
} from './opaque-by-hand.js';
export { FIXED_PORTS, freeTcpPort, PortAllocator, PortInUseError, type PortNeed } from './ports.js';
export { isReady, spawnOwned, stopProcess, waitForExit, type OwnedProcess } from './processes.js';
export { startPostgres, type PostgresHandle, type PostgresOptions } from './postgres.js';
export { rejectsWithStatus } from './rejects-with-status.js';
export {
  ServiceTestBed,
  type RunningService,
  type ServiceTestBedOptions,
  type ServiceUnderTest,
  type StartableService,
} from './service-bed.js';
export { waitFor } from './wait-for.js';

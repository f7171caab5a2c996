// Shared by this service's tests (not exported from the package): a client as the SDK is one, with
// the real OPAQUE client functions and bytes on the wire (the steps live in @qpq/testnet).
import type { FinishLoginResponse } from '@qpq/proto';
import type { Identity, RpcClient } from '@qpq/runtime';
import { newDevice, opaqueBeginLogin, opaqueLogin, opaqueRegister, rpcCaller, type LoginDevice } from '@qpq/testnet';
import { randomBytes } from 'node:crypto';

export { existingDevice, newDevice } from '@qpq/testnet';

export const uniqueName = (prefix: string) => `${prefix}${randomBytes(4).toString('hex')}`;

export const identityOf = (s: FinishLoginResponse): Identity => ({
  accountId: s.accountId,
  deviceId: s.deviceId,
  username: s.username,
});

export const register = (client: RpcClient, username: string, password: string) =>
  opaqueRegister(rpcCaller(client), username, password);

/** StartLogin, and the client's half of the finish (undefined when the client rejects the server). */
export const beginLogin = (client: RpcClient, username: string, password: string) =>
  opaqueBeginLogin(rpcCaller(client), username, password);

export const login = (
  client: RpcClient,
  username: string,
  password: string,
  device: LoginDevice = newDevice(),
): Promise<FinishLoginResponse> => opaqueLogin(rpcCaller(client), username, password, device);

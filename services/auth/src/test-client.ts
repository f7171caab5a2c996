// Shared by this service's tests (not exported from the package): a client as the SDK is one, with
// the real OPAQUE client functions and bytes on the wire.
import {
  AuthServiceService as Rpc,
  type FinishLoginRequest,
  type FinishLoginResponse,
  type StartLoginResponse,
} from '@qpq/proto';
import type { Identity, RpcClient } from '@qpq/runtime';
import * as opaque from '@serenity-kit/opaque';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';

export const bytes = (libraryString: string) => Buffer.from(libraryString, 'base64url');
export const text = (b: Uint8Array) => Buffer.from(b).toString('base64url');
export const uniqueName = (prefix: string) => `${prefix}${randomBytes(4).toString('hex')}`;
export const newDevice = (name = 'laptop'): FinishLoginRequest['device'] => ({
  $case: 'newDevice',
  value: { identityKey: randomBytes(32), name },
});
export const existingDevice = (deviceId: string): FinishLoginRequest['device'] => ({
  $case: 'deviceId',
  value: deviceId,
});

export const identityOf = (s: FinishLoginResponse): Identity => ({
  accountId: s.accountId,
  deviceId: s.deviceId,
  username: s.username,
});

export async function register(client: RpcClient, username: string, password: string) {
  await opaque.ready;
  const { clientRegistrationState, registrationRequest } = opaque.client.startRegistration({ password });
  const { registrationResponse } = await client.call(Rpc.startRegistration, {
    username,
    registrationRequest: bytes(registrationRequest),
  });
  const { registrationRecord } = opaque.client.finishRegistration({
    clientRegistrationState,
    registrationResponse: text(registrationResponse),
    password,
  });
  return client.call(Rpc.finishRegistration, { username, registrationRecord: bytes(registrationRecord) });
}

/** StartLogin, and the client's half of the finish (undefined when the client rejects the server). */
export async function beginLogin(client: RpcClient, username: string, password: string) {
  await opaque.ready;
  const { clientLoginState, startLoginRequest } = opaque.client.startLogin({ password });
  const started: StartLoginResponse = await client.call(Rpc.startLogin, {
    username,
    startLoginRequest: bytes(startLoginRequest),
  });
  const finished = opaque.client.finishLogin({
    clientLoginState,
    loginResponse: text(started.loginResponse),
    password,
  });
  return { started, finishLoginRequest: finished ? bytes(finished.finishLoginRequest) : undefined };
}

export async function login(
  client: RpcClient,
  username: string,
  password: string,
  device: FinishLoginRequest['device'] = newDevice(),
): Promise<FinishLoginResponse> {
  const { started, finishLoginRequest } = await beginLogin(client, username, password);
  assert.ok(finishLoginRequest, 'the client accepts the server during a login with the right password');
  return client.call(Rpc.finishLogin, { loginId: started.loginId, finishLoginRequest, device });
}

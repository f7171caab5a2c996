/**
 * The client protocol driven by hand over a raw gateway connection, without the SDK: for tests that
 * play a misbehaving or hostile client, or look at exactly what the gateway answers.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { AuthServiceService } from '@qpq/proto';
import * as opaque from '@serenity-kit/opaque';
import type { TestNetwork } from '@qpq/testnet';
import { GatewayConnection } from '@qpq/wire';

/** A method of a generated service definition (e.g. `AuthServiceService.startLogin`). */
export interface Method<Req, Res> {
  path: string;
  requestSerialize(value: Req): Buffer;
  responseDeserialize(value: Buffer): Res;
}

/** One request through the gateway, encoded and decoded with the method's definition. */
export async function call<Req, Res>(conn: GatewayConnection, method: Method<Req, Res>, request: Req): Promise<Res> {
  const answer = await conn.request(method.path, new Uint8Array(method.requestSerialize(request)), 20_000);
  return method.responseDeserialize(Buffer.from(answer));
}

// The OPAQUE library speaks unpadded base64url; the wire carries the raw bytes.
export const toWire = (s: string) => new Uint8Array(Buffer.from(s, 'base64url'));
export const fromWire = (b: Uint8Array) => Buffer.from(b).toString('base64url');

export const hostPort = (address: string) => {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i), port: Number(address.slice(i + 1)) };
};

/** A raw connection to gateway `gateway` of the network, trusting its CA. */
export function connectByHand(net: TestNetwork, gateway = 0): Promise<GatewayConnection> {
  return GatewayConnection.connect({
    ...hostPort(net.gatewayAddresses[gateway]!),
    ca: readFileSync(net.caPath, 'utf8'),
    timeoutMs: 10_000,
  });
}

/** OPAQUE registration of `username` through the gateway (no login). */
export async function registerByHand(conn: GatewayConnection, username: string, password: string): Promise<void> {
  await opaque.ready;
  const reg = opaque.client.startRegistration({ password });
  const started = await call(conn, AuthServiceService.startRegistration, {
    username,
    registrationRequest: toWire(reg.registrationRequest),
  });
  const { registrationRecord } = opaque.client.finishRegistration({
    clientRegistrationState: reg.clientRegistrationState,
    registrationResponse: fromWire(started.registrationResponse),
    password,
  });
  await call(conn, AuthServiceService.finishRegistration, { username, registrationRecord: toWire(registrationRecord) });
}

/** StartLogin through the gateway, and the client's half of the finish (a FinishLogin without its device). */
export async function startLoginByHand(conn: GatewayConnection, username: string, password: string) {
  await opaque.ready;
  const login = opaque.client.startLogin({ password });
  const started = await call(conn, AuthServiceService.startLogin, {
    username,
    startLoginRequest: toWire(login.startLoginRequest),
  });
  const finished = opaque.client.finishLogin({
    clientLoginState: login.clientLoginState,
    loginResponse: fromWire(started.loginResponse),
    password,
  });
  assert.ok(finished, 'the OPAQUE client accepts the server');
  return { loginId: started.loginId, finishLoginRequest: toWire(finished.finishLoginRequest) };
}

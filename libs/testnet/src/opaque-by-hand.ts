/**
 * OPAQUE registration and login driven by hand with the real client library, for tests that need an
 * account without the SDK or look at exactly what the auth service answers. Every step takes a
 * `CallMethod`, so it runs the same through the gateway (QUIC) or straight to the auth service (gRPC).
 */
import {
  AuthServiceService as Auth,
  type FinishLoginRequest,
  type FinishLoginResponse,
  type FinishRegistrationResponse,
  type StartLoginResponse,
} from '@qpq/proto';
import * as opaque from '@serenity-kit/opaque';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { CallMethod } from './call-method.js';

// The OPAQUE library speaks unpadded base64url; the wire carries the raw bytes.
const toWire = (s: string) => new Uint8Array(Buffer.from(s, 'base64url'));
const fromWire = (b: Uint8Array) => Buffer.from(b).toString('base64url');

/** The device a login is for. */
export type LoginDevice = FinishLoginRequest['device'];

/** A login as a new device, with a random (well-formed) identity key. */
export const newDevice = (name = 'laptop'): LoginDevice => ({
  $case: 'newDevice',
  value: { identityKey: randomBytes(32), name },
});

/**
 * Client-side key stretching (Argon2id), which the server never sees: the library's default unless a
 * caller that logs in many accounts asks for less. An account must log in with what it registered with.
 */
export type KeyStretching = NonNullable<Parameters<typeof opaque.client.finishLogin>[0]['keyStretching']>;

/** The cheapest Argon2id the library takes (for benchmarks logging in hundreds of devices). */
export const LIGHT_KEY_STRETCHING: KeyStretching = {
  'argon2id-custom': { iterations: 1, memory: 8, parallelism: 1 },
};

/** A login as a device the account already has. */
export const existingDevice = (deviceId: string): LoginDevice => ({ $case: 'deviceId', value: deviceId });

/** Registers `username` (no login). */
export async function opaqueRegister(
  call: CallMethod,
  username: string,
  password: string,
  keyStretching?: KeyStretching,
): Promise<FinishRegistrationResponse> {
  await opaque.ready;
  const reg = opaque.client.startRegistration({ password });
  const started = await call(Auth.startRegistration, {
    username,
    registrationRequest: toWire(reg.registrationRequest),
  });
  const { registrationRecord } = opaque.client.finishRegistration({
    clientRegistrationState: reg.clientRegistrationState,
    registrationResponse: fromWire(started.registrationResponse),
    password,
    keyStretching,
  });
  return call(Auth.finishRegistration, { username, registrationRecord: toWire(registrationRecord) });
}

export interface BegunLogin {
  started: StartLoginResponse;
  /** The client's half of FinishLogin; undefined when the client rejects the server (a wrong password). */
  finishLoginRequest: Uint8Array | undefined;
}

/** StartLogin, and the client's half of the finish. */
export async function opaqueBeginLogin(
  call: CallMethod,
  username: string,
  password: string,
  keyStretching?: KeyStretching,
): Promise<BegunLogin> {
  await opaque.ready;
  const login = opaque.client.startLogin({ password });
  const started = await call(Auth.startLogin, { username, startLoginRequest: toWire(login.startLoginRequest) });
  const finished = opaque.client.finishLogin({
    clientLoginState: login.clientLoginState,
    loginResponse: fromWire(started.loginResponse),
    password,
    keyStretching,
  });
  return { started, finishLoginRequest: finished ? toWire(finished.finishLoginRequest) : undefined };
}

/** A whole login as `device`, with a password the client must accept the server with. */
export async function opaqueLogin(
  call: CallMethod,
  username: string,
  password: string,
  device: LoginDevice = newDevice(),
  keyStretching?: KeyStretching,
): Promise<FinishLoginResponse> {
  const { started, finishLoginRequest } = await opaqueBeginLogin(call, username, password, keyStretching);
  assert.ok(finishLoginRequest, 'the OPAQUE client accepts the server');
  return call(Auth.finishLogin, { loginId: started.loginId, finishLoginRequest, device });
}

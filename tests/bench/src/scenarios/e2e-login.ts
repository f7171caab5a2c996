// Registration and login of bench devices with a light client-side key stretching. OPAQUE's key
// stretching runs on the client only (the server stores and checks what it derived, whatever it cost),
// so the server's work is the same as for any client; with the library's default, the ≈0.3 s of
// Argon2 per login in this one process made logging in a hundred devices the longest step of the run.
// @qpq/testnet's opaqueRegister/opaqueLogin take no stretching option, hence this variant of them.
import { AuthServiceService as Auth, type FinishLoginResponse } from '@qpq/proto';
import { newDevice, type CallMethod } from '@qpq/testnet';
import * as opaque from '@serenity-kit/opaque';

/** The cheapest Argon2id the library takes: the same for registration and every login of an account. */
const KEY_STRETCHING = { 'argon2id-custom': { iterations: 1, memory: 8, parallelism: 1 } } as const;

const toWire = (s: string) => new Uint8Array(Buffer.from(s, 'base64url'));
const fromWire = (b: Uint8Array) => Buffer.from(b).toString('base64url');

/** Registers `username` (no login). */
export async function registerLight(call: CallMethod, username: string, password: string): Promise<void> {
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
    keyStretching: KEY_STRETCHING,
  });
  await call(Auth.finishRegistration, { username, registrationRecord: toWire(registrationRecord) });
}

/** Logs in as a new device named `name`. */
export async function loginLight(
  call: CallMethod,
  username: string,
  password: string,
  name: string,
): Promise<FinishLoginResponse> {
  await opaque.ready;
  const login = opaque.client.startLogin({ password });
  const started = await call(Auth.startLogin, { username, startLoginRequest: toWire(login.startLoginRequest) });
  const finished = opaque.client.finishLogin({
    clientLoginState: login.clientLoginState,
    loginResponse: fromWire(started.loginResponse),
    password,
    keyStretching: KEY_STRETCHING,
  });
  if (!finished) throw new Error(`the OPAQUE client rejected the server while logging in ${username}`);
  return call(Auth.finishLogin, {
    loginId: started.loginId,
    finishLoginRequest: toWire(finished.finishLoginRequest),
    device: newDevice(name),
  });
}

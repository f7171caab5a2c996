import * as opaque from '@serenity-kit/opaque';
import {
  AuthServiceService,
  type FinishLoginRequest,
  type FinishLoginResponse,
  type FinishRegistrationResponse,
} from '@qpq/proto';
import { GrpcCode, WrongCredentialsError, isRpcFailure } from './errors.js';
import type { GatewaySession } from './gateway-session.js';

// The OPAQUE library speaks unpadded base64url strings; the wire carries the same bytes raw
// (the auth service converts with the same rule).
const toWire = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'base64url'));
const fromWire = (bytes: Uint8Array): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');

/** Creates the account: the password never leaves this process, only OPAQUE messages do. */
export async function registerAccount(
  session: GatewaySession,
  username: string,
  password: string,
): Promise<FinishRegistrationResponse> {
  await opaque.ready;
  const { clientRegistrationState, registrationRequest } = opaque.client.startRegistration({ password });
  const started = await session.call(AuthServiceService.startRegistration, {
    username,
    registrationRequest: toWire(registrationRequest),
  });
  const { registrationRecord } = opaque.client.finishRegistration({
    clientRegistrationState,
    registrationResponse: fromWire(started.registrationResponse),
    password,
  });
  return session.call(AuthServiceService.finishRegistration, {
    username,
    registrationRecord: toWire(registrationRecord),
  });
}

/**
 * Logs in as an existing device (`{ deviceId }`) or registers a new one (`{ newDevice }`). A wrong
 * password is detected here, before anything is sent back: the OPAQUE client cannot finish.
 */
export async function loginAccount(
  session: GatewaySession,
  username: string,
  password: string,
  device: FinishLoginRequest['device'],
): Promise<FinishLoginResponse> {
  await opaque.ready;
  const { clientLoginState, startLoginRequest } = opaque.client.startLogin({ password });
  const started = await session.call(AuthServiceService.startLogin, {
    username,
    startLoginRequest: toWire(startLoginRequest),
  });
  const finished = opaque.client.finishLogin({
    clientLoginState,
    loginResponse: fromWire(started.loginResponse),
    password,
  });
  if (!finished) throw new WrongCredentialsError();
  try {
    return await session.call(AuthServiceService.finishLogin, {
      loginId: started.loginId,
      finishLoginRequest: toWire(finished.finishLoginRequest),
      device,
    });
  } catch (err) {
    if (isRpcFailure(err) && err.code === GrpcCode.UNAUTHENTICATED && /wrong username or password/i.test(err.message)) {
      throw new WrongCredentialsError();
    }
    throw err;
  }
}

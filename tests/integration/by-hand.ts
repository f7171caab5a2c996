/**
 * The client protocol driven by hand over a raw gateway connection, without the SDK: for tests that
 * play a misbehaving or hostile client, or look at exactly what the gateway answers. The OPAQUE steps
 * themselves live in @qpq/testnet (opaque-by-hand.ts), shared with the services' tests.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { callGateway, gatewayCaller, opaqueBeginLogin, opaqueRegister, type TestNetwork } from '@qpq/testnet';
import { GatewayConnection } from '@qpq/wire';

/** One request through the gateway, encoded and decoded with the method's definition. */
export const call = callGateway;

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
  await opaqueRegister(gatewayCaller(conn), username, password);
}

/** StartLogin through the gateway, and the client's half of the finish (a FinishLogin without its device). */
export async function startLoginByHand(conn: GatewayConnection, username: string, password: string) {
  const { started, finishLoginRequest } = await opaqueBeginLogin(gatewayCaller(conn), username, password);
  assert.ok(finishLoginRequest, 'the OPAQUE client accepts the server');
  return { loginId: started.loginId, finishLoginRequest };
}

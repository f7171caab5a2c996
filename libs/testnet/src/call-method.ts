import type { MethodDefinition, RpcClient } from '@qpq/runtime';

/**
 * Sends one request of a generated method (e.g. `AuthServiceService.startLogin`) and resolves with the
 * decoded answer. The by-hand helpers take one of these, so the same steps run over a raw gateway
 * connection (QUIC, `gatewayCaller`) or straight to a service (gRPC, `rpcCaller`).
 */
export type CallMethod = <Req, Res>(method: MethodDefinition<Req, Res>, request: Req) => Promise<Res>;

/**
 * What a raw gateway connection (`GatewayConnection` from @qpq/wire) offers: one encoded request by
 * method path. Stated here rather than imported because @qpq/wire's own tests depend on this package.
 */
export interface RequestChannel {
  request(method: string, payload: Uint8Array, timeoutMs?: number): Promise<Uint8Array>;
}

/** One request through a gateway connection, encoded and decoded with the method's definition. */
export async function callGateway<Req, Res>(
  conn: RequestChannel,
  method: MethodDefinition<Req, Res>,
  request: Req,
  timeoutMs = 20_000,
): Promise<Res> {
  const answer = await conn.request(method.path, new Uint8Array(method.requestSerialize(request)), timeoutMs);
  return method.responseDeserialize(Buffer.from(answer));
}

/** Calls through a gateway connection, as the client protocol does. */
export const gatewayCaller =
  (conn: RequestChannel): CallMethod =>
  (method, request) =>
    callGateway(conn, method, request);

/** Calls a service directly over gRPC, with the client's certificate and no identity metadata. */
export const rpcCaller =
  (client: RpcClient): CallMethod =>
  (method, request) =>
    client.call(method, request);

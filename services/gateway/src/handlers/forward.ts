import { QpqError, type Identity } from '@qpq/runtime';
import type { AppContext } from '../context.js';
import { toClientStatus } from '../errors.js';
import type { Backend } from '../routes.js';

/**
 * Every other client method: the request's bytes go to the backend unchanged over mutual TLS (with
 * the attached identity and the request id as metadata) and its answer's bytes come back unchanged.
 * The gateway never decodes either.
 */
export function forward(ctx: AppContext) {
  return async (
    backend: Backend,
    method: string,
    payload: Uint8Array,
    identity: Identity | undefined,
    requestId: string,
  ): Promise<Uint8Array> => {
    try {
      return await ctx.backends[backend].callRaw(method, payload, { requestId, ...(identity ? { identity } : {}) });
    } catch (err) {
      const { code, message } = toClientStatus(err, backend);
      throw new QpqError(code, message, { cause: err });
    }
  };
}

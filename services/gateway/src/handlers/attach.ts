import { AttachRequest, AttachResponse } from '@qpq/proto';
import type { Attachment } from '../attachment.js';
import type { AppContext } from '../context.js';
import { MalformedAttachError, toClientStatus } from '../errors.js';
import { QpqError } from '@qpq/runtime';

/**
 * SessionService/Attach, answered by the gateway itself: validates the session token with auth
 * (cached) and binds the connection to the token's device. Answers the identity and the address
 * (`username@domain`) others reach this account by.
 */
export function attach(ctx: AppContext) {
  return async (payload: Uint8Array, attachment: Attachment, requestId: string): Promise<Uint8Array> => {
    let request: AttachRequest;
    try {
      request = AttachRequest.decode(payload);
    } catch {
      throw new MalformedAttachError();
    }
    let identity;
    try {
      ({ identity } = await attachment.attach(request.sessionToken, requestId));
    } catch (err) {
      if (err instanceof QpqError) throw err;
      const { code, message } = toClientStatus(err, 'auth');
      throw new QpqError(code, message, { cause: err });
    }
    return AttachResponse.encode({
      accountId: identity.accountId,
      deviceId: identity.deviceId,
      username: identity.username,
      address: `${identity.username}@${ctx.cfg.domain}`,
    }).finish();
  };
}

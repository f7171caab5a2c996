import { AuthServiceService, type Request } from '@qpq/proto';
import type { Attachment } from './attachment.js';
import type { AppContext } from './context.js';
import { UnknownMethodError } from './errors.js';
import { attach } from './handlers/attach.js';
import { forward } from './handlers/forward.js';
import { routeOf } from './routes.js';

export type Dispatch = (request: Request, attachment: Attachment, requestId: string) => Promise<Uint8Array>;

/**
 * One client request to its answer's bytes: the routing table decides where it goes and whether it
 * needs an attached session; failures are thrown as QpqError carrying the status the client gets.
 */
export function dispatcher(ctx: AppContext): Dispatch {
  const attachSession = attach(ctx);
  const forwardCall = forward(ctx);
  return async (request, attachment, requestId) => {
    const route = routeOf(request.method);
    if (!route) throw new UnknownMethodError(request.method);
    if (route.target === 'attach') return attachSession(request.payload, attachment, requestId);
    const identity = route.needsSession ? await attachment.identity(requestId) : attachment.current;
    const answer = await forwardCall(route.target, route.method, request.payload, identity, requestId);
    if (route.method === AuthServiceService.logout.path) attachment.endSession();
    return answer;
  };
}

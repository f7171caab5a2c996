import {
  AuthServiceService,
  BlobServiceService,
  DeliveryServiceService,
  KeyPackageServiceService,
  KeyTransparencyServiceService,
  SessionServiceService,
} from '@qpq/proto';

export type Backend = 'auth' | 'keypackage' | 'delivery' | 'ktlog' | 'blob';

/** Where a client method goes, and whether the connection must be attached to a session first. */
export type Route =
  | { method: string; target: 'attach'; needsSession: false }
  | { method: string; target: Backend; needsSession: boolean };

/** Auth methods a client calls before it has a session: registration and login. */
const PUBLIC_AUTH_METHODS = new Set<keyof typeof AuthServiceService>([
  'startRegistration',
  'finishRegistration',
  'startLogin',
  'finishLogin',
]);

/** Auth methods for the gateway alone: a client must never learn who a token belongs to by asking. */
const INTERNAL_AUTH_METHODS = new Set<keyof typeof AuthServiceService>(['validateSession']);

/**
 * The unary methods of a service definition. Streaming ones (BlobService.Upload, Download) are never
 * requests: file bytes travel on file streams of their own (file-stream.ts).
 */
function backendRoutes(
  backend: Backend,
  definition: Record<string, { path: string; requestStream: boolean; responseStream: boolean }>,
  isPublic: (key: string) => boolean,
): Route[] {
  return Object.entries(definition)
    .filter(([, def]) => !def.requestStream && !def.responseStream)
    .map(([key, def]) => ({
      method: def.path,
      target: backend,
      needsSession: !isPublic(key),
    }));
}

/**
 * Every method a client may call, by its full gRPC path (e.g. "/qpq.v1.AuthService/StartLogin").
 * Built from the generated service definitions, so a new unary RPC in keypackage, delivery, ktlog or blob is routed
 * (behind a session) without touching the gateway; a new auth RPC is too, unless listed above.
 */
export const routes: ReadonlyMap<string, Route> = new Map(
  [
    { method: SessionServiceService.attach.path, target: 'attach', needsSession: false } as Route,
    ...backendRoutes(
      'auth',
      Object.fromEntries(
        Object.entries(AuthServiceService).filter(
          ([key]) => !INTERNAL_AUTH_METHODS.has(key as keyof typeof AuthServiceService),
        ),
      ),
      (key) => PUBLIC_AUTH_METHODS.has(key as keyof typeof AuthServiceService),
    ),
    ...backendRoutes('keypackage', KeyPackageServiceService, () => false),
    ...backendRoutes('delivery', DeliveryServiceService, () => false),
    ...backendRoutes('ktlog', KeyTransparencyServiceService, () => false),
    ...backendRoutes('blob', BlobServiceService, () => false),
  ].map((r) => [r.method, r]),
);

/** The route of a method, or undefined for one a client may not call. */
export function routeOf(method: string): Route | undefined {
  return routes.get(method);
}

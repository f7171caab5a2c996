import {
  AuthServiceService,
  DeliveryServiceService,
  KeyPackageServiceService,
  KeyTransparencyServiceService,
  SessionServiceService,
} from '@qpq/proto';

export type Backend = 'auth' | 'keypackage' | 'delivery' | 'ktlog';

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

function backendRoutes(
  backend: Backend,
  definition: Record<string, { path: string }>,
  isPublic: (key: string) => boolean,
): Route[] {
  return Object.entries(definition).map(([key, def]) => ({
    method: def.path,
    target: backend,
    needsSession: !isPublic(key),
  }));
}

/**
 * Every method a client may call, by its full gRPC path (e.g. "/qpq.v1.AuthService/StartLogin").
 * Built from the generated service definitions, so a new RPC in keypackage, delivery or ktlog is routed
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
  ].map((r) => [r.method, r]),
);

/** The route of a method, or undefined for one a client may not call. */
export function routeOf(method: string): Route | undefined {
  return routes.get(method);
}

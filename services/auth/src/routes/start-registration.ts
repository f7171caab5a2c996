import type { StartRegistrationRequest, StartRegistrationResponse } from '@qpq/proto';
import type { UnaryHandler } from '@qpq/runtime';
import type { AppContext } from '../context.js';
import { UsernameTakenError } from '../errors.js';
import { fromLibrary, opaque, toLibrary, withClientInput } from '../opaque.js';
import { parseUsername } from '../usernames.js';

/** OPAQUE registration, step 1: answer the client's blinded request for a free username. */
export function startRegistration(ctx: AppContext): UnaryHandler<StartRegistrationRequest, StartRegistrationResponse> {
  return async (request) => {
    const username = parseUsername(request.username);
    const taken = await ctx.db.selectFrom('accounts').select('id').where('username', '=', username).executeTakeFirst();
    if (taken) throw new UsernameTakenError();
    const { registrationResponse } = withClientInput('registration request', () =>
      opaque.server.createRegistrationResponse({
        serverSetup: ctx.serverSetup,
        userIdentifier: username,
        registrationRequest: toLibrary(request.registrationRequest),
      }),
    );
    return { registrationResponse: fromLibrary(registrationResponse) };
  };
}

// Cryptography for reference, on one core of this process: OPAQUE logins as the auth service computes
// them (the server's two steps; the client's key stretching is done outside the timing), and MLS
// application messages as clients encrypt and decrypt them with @qpq/crypto.
import {
  addMembers,
  createGroup,
  deviceIdentity,
  encryptMessage,
  generateDeviceKeys,
  generateKeyPackages,
  joinFromWelcome,
  processMessage,
} from '@qpq/crypto';
import * as opaque from '@serenity-kit/opaque';
import { randomBytes } from 'node:crypto';
import type { Measurement } from '../results.js';
import type { Scenario } from '../scenario.js';

/** Each login also runs the client's key stretching (untimed, ≈0.3 s here), which bounds the count. */
const LOGINS = 60;
const QUICK_LOGINS = 12;
const MLS_MESSAGES = 1_000;
const QUICK_MLS_MESSAGES = 200;
/** Plaintext of a short text message. */
const PLAINTEXT_BYTES = 200;
const PASSWORD = 'bench password, not a secret';

export const opaqueLogins: Scenario = {
  name: 'opaque.logins_per_s',
  description: "OPAQUE logins/s on the server's side (start + finish), with the library auth uses",
  async run(ctx) {
    const logins = ctx.quick ? QUICK_LOGINS : LOGINS;
    await opaque.ready;
    const serverSetup = opaque.server.createSetup();
    const userIdentifier = 'bench';
    const reg = opaque.client.startRegistration({ password: PASSWORD });
    const { registrationResponse } = opaque.server.createRegistrationResponse({
      serverSetup,
      userIdentifier,
      registrationRequest: reg.registrationRequest,
    });
    const { registrationRecord } = opaque.client.finishRegistration({
      clientRegistrationState: reg.clientRegistrationState,
      registrationResponse,
      password: PASSWORD,
    });
    ctx.progress(`opaque.logins_per_s: ${logins} logins (client steps untimed)`);
    let serverMs = 0;
    for (let i = 0; i < logins; i++) {
      ctx.signal.throwIfAborted();
      const client = opaque.client.startLogin({ password: PASSWORD });
      let t = performance.now();
      const server = opaque.server.startLogin({
        serverSetup,
        userIdentifier,
        registrationRecord,
        startLoginRequest: client.startLoginRequest,
      });
      serverMs += performance.now() - t;
      const finished = opaque.client.finishLogin({
        clientLoginState: client.clientLoginState,
        loginResponse: server.loginResponse,
        password: PASSWORD,
      });
      if (!finished) throw new Error('the OPAQUE client rejected the server');
      t = performance.now();
      opaque.server.finishLogin({
        serverLoginState: server.serverLoginState,
        finishLoginRequest: finished.finishLoginRequest,
      });
      serverMs += performance.now() - t;
    }
    const results: Measurement[] = [
      {
        name: 'opaque.logins_per_s',
        value: logins / (serverMs / 1000),
        unit: 'logins/s',
        params: { logins, cores: 1, steps: 'server.startLogin + server.finishLogin', library: '@serenity-kit/opaque' },
      },
    ];
    return results;
  },
};

export const mlsMessages: Scenario = {
  name: 'mls',
  description: 'MLS application messages encrypted and decrypted per second (@qpq/crypto, two-member group)',
  async run(ctx) {
    const count = ctx.quick ? QUICK_MLS_MESSAGES : MLS_MESSAGES;
    const alice = { id: deviceIdentity('alice@localhost', 'a1'), keys: await generateDeviceKeys() };
    const bob = { id: deviceIdentity('bob@localhost', 'b1'), keys: await generateDeviceKeys() };
    const [bundle] = await generateKeyPackages(bob.keys, bob.id, 1);
    if (!bundle) throw new Error('no KeyPackage made');
    const created = await createGroup(alice.keys, alice.id);
    const added = await addMembers(created.state, [bundle.publicBytes]);
    const joined = await joinFromWelcome(added.welcome, (ref) => (ref === bundle.ref ? bundle : undefined));
    let a = added.state;
    let b = joined.state;
    ctx.progress(`mls: ${count} messages encrypted by one member and decrypted by the other`);
    const plaintext = randomBytes(PLAINTEXT_BYTES);
    let encryptMs = 0;
    let decryptMs = 0;
    let ciphertextBytes = 0;
    for (let i = 0; i < count; i++) {
      ctx.signal.throwIfAborted();
      let t = performance.now();
      const sent = await encryptMessage(a, plaintext);
      encryptMs += performance.now() - t;
      a = sent.state;
      ciphertextBytes = sent.message.length;
      t = performance.now();
      const got = await processMessage(b, sent.message);
      decryptMs += performance.now() - t;
      b = got.state;
      if (got.kind !== 'application') throw new Error(`expected an application message, got ${got.kind}`);
    }
    const params = {
      messages: count,
      plaintext_bytes: PLAINTEXT_BYTES,
      ciphertext_bytes: ciphertextBytes,
      members: 2,
      cores: 1,
    };
    const results: Measurement[] = [
      { name: 'mls.encrypt_per_s', value: count / (encryptMs / 1000), unit: 'msg/s', params },
      { name: 'mls.decrypt_per_s', value: count / (decryptMs / 1000), unit: 'msg/s', params },
    ];
    return results;
  },
};

import { status } from '@grpc/grpc-js';
import { AuthServiceService as Rpc, type FinishLoginRequest, type FinishLoginResponse } from '@qpq/proto';
import { readEnv, type RpcClient } from '@qpq/runtime';
import { messagesDuring, metricValue, rejectsWithStatus, ServiceTestBed, startNats } from '@qpq/testnet';
import type { NatsConnection } from 'nats';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { authEnv, envToConfig, type AuthConfig } from './config.js';
import { ExpirySweeper } from './expiry-sweeper.js';
import { AuthService } from './index.js';
import {
  beginLogin as beginLoginWith,
  identityOf,
  login as loginWith,
  newDevice,
  register as registerWith,
  uniqueName,
} from './test-client.js';

const DOMAIN = 'example.test';

let bed: ServiceTestBed;
let service: AuthService;
/** Connects with the gateway's certificate: identity metadata is honoured. */
let gateway: RpcClient;
/** Connects with another internal certificate: identity metadata must be ignored. */
let stranger: RpcClient;
let nc: NatsConnection;

const configFor = (env: Record<string, string> = {}): AuthConfig => envToConfig(readEnv(authEnv, bed.env(env)));

// Hooks and tests carry timeouts: a stuck dependency fails the run instead of hanging it.
before(
  async () => {
    bed = await ServiceTestBed.create({ service: 'auth', env: { QPQ_DOMAIN: DOMAIN } });
    ({ service, gateway, stranger, nc } = await bed.startService(() => AuthService.create(configFor())));
  },
  { timeout: 120_000 },
);

after(() => bed?.destroy(() => service?.stop()), { timeout: 60_000 });

// --- a client, as the SDK will be (test-client.ts), calling through the gateway's certificate by default ---

const register = (username: string, password: string, client = gateway) => registerWith(client, username, password);
const beginLogin = (username: string, password: string, client = gateway) => beginLoginWith(client, username, password);
const login = (
  username: string,
  password: string,
  device: FinishLoginRequest['device'] = newDevice(),
  client = gateway,
): Promise<FinishLoginResponse> => loginWith(client, username, password, device);

/** Collects audit events published while `action` runs (plus a moment for them to arrive). */
const auditDuring = (action: () => Promise<unknown>): Promise<{ subject: string; body: string }[]> =>
  messagesDuring(
    nc,
    'qpq.audit.>',
    (msg) => ({ subject: msg.subject, body: msg.string() }),
    () => action().catch(() => undefined),
  );

describe('auth service', { timeout: 120_000 }, () => {
  test('registers and logs in with the real OPAQUE client, and the session token resolves to the device', async () => {
    const username = uniqueName('alice');
    const registered = await register(username, 'correct horse');
    assert.equal(registered.address, `${username}@${DOMAIN}`);

    const session = await login(username, 'correct horse', newDevice('alice laptop'));
    assert.equal(session.accountId, registered.accountId);
    assert.equal(session.username, username);
    assert.equal(session.address, `${username}@${DOMAIN}`);
    assert.equal(Buffer.from(session.sessionToken, 'base64url').length, 32);
    const thirtyDays = 30 * 24 * 3600 * 1000;
    assert.ok(Math.abs(Number(session.expiresAtMs) - (Date.now() + thirtyDays)) < 60_000);

    const validated = await gateway.call(Rpc.validateSession, { sessionToken: session.sessionToken });
    assert.deepEqual(
      { accountId: validated.accountId, deviceId: validated.deviceId, username: validated.username },
      identityOf(session),
    );

    const { devices } = await gateway.call(Rpc.listDevices, {}, { identity: identityOf(session) });
    assert.deepEqual(
      devices.map((d) => [d.deviceId, d.name]),
      [[session.deviceId, 'alice laptop']],
    );

    // Logging in again as the same device adds no device.
    const again = await login(username, 'correct horse', { $case: 'deviceId', value: session.deviceId });
    assert.equal(again.deviceId, session.deviceId);
    assert.notEqual(again.sessionToken, session.sessionToken);
    const after = await gateway.call(Rpc.listDevices, {}, { identity: identityOf(session) });
    assert.equal(after.devices.length, 1);
  });

  test('a username is taken once; usernames outside [a-z0-9_.-]{1,32} are refused', async () => {
    const username = uniqueName('bob');
    await register(username, 'pw one');
    await rejectsWithStatus(register(username, 'pw two'), status.ALREADY_EXISTS, 'username is taken');
    await rejectsWithStatus(register(username.toUpperCase(), 'pw two'), status.ALREADY_EXISTS, 'username is taken');
    await rejectsWithStatus(register('no spaces', 'pw'), status.INVALID_ARGUMENT, /a-z, 0-9/);
    await rejectsWithStatus(register('x'.repeat(33), 'pw'), status.INVALID_ARGUMENT, /1 to 32/);
  });

  test('a wrong password gets no session', async () => {
    const username = uniqueName('carol');
    await register(username, 'right password');

    // The client itself notices: the server's response does not open with the wrong password.
    const wrong = await beginLogin(username, 'wrong password');
    assert.equal(wrong.finishLoginRequest, undefined);

    // A finish message not made for this login (here: a valid one from another login) is refused.
    const other = await beginLogin(username, 'right password');
    const events = await auditDuring(() =>
      rejectsWithStatus(
        gateway.call(Rpc.finishLogin, {
          loginId: wrong.started.loginId,
          finishLoginRequest: other.finishLoginRequest!,
          device: newDevice(),
        }),
        status.UNAUTHENTICATED,
        'wrong username or password',
      ),
    );
    assert.ok(events.some((e) => e.subject === 'qpq.audit.login.failed' && e.body.includes(username)));
  });

  test('a replayed finish is refused, although the OPAQUE library would accept it', async () => {
    const username = uniqueName('dave');
    await register(username, 'pw');
    const { started, finishLoginRequest } = await beginLogin(username, 'pw');
    const request = { loginId: started.loginId, finishLoginRequest: finishLoginRequest!, device: newDevice() };
    await gateway.call(Rpc.finishLogin, request);
    const events = await auditDuring(() =>
      rejectsWithStatus(
        gateway.call(Rpc.finishLogin, request),
        status.UNAUTHENTICATED,
        'login expired or already used; start again',
      ),
    );
    assert.ok(events.some((e) => e.subject === 'qpq.audit.login.replay_refused'));
  });

  test('an unknown user gets a response of the same length as a real one, and the same refusal', async () => {
    const known = uniqueName('erin');
    await register(known, 'pw');
    const real = await beginLogin(known, 'pw');
    const unknown = await beginLogin(uniqueName('nobody'), 'pw');
    assert.equal(unknown.started.loginResponse.length, real.started.loginResponse.length);
    assert.equal(unknown.finishLoginRequest, undefined, 'the fake response does not open');
    // A finish sent anyway is refused with the wrong-password message.
    await rejectsWithStatus(
      gateway.call(Rpc.finishLogin, {
        loginId: unknown.started.loginId,
        finishLoginRequest: real.finishLoginRequest!,
        device: newDevice(),
      }),
      status.UNAUTHENTICATED,
      'wrong username or password',
    );
  });

  test('an account has at most 5 devices; the 6th is refused with a clear message', async () => {
    const username = uniqueName('frank');
    await register(username, 'pw');
    const sessions: FinishLoginResponse[] = [];
    for (let i = 0; i < 5; i++) sessions.push(await login(username, 'pw', newDevice(`device ${i}`)));
    const events = await auditDuring(() =>
      rejectsWithStatus(
        login(username, 'pw', newDevice('one too many')),
        status.RESOURCE_EXHAUSTED,
        'device limit reached: an account can have at most 5 devices',
      ),
    );
    assert.ok(events.some((e) => e.subject === 'qpq.audit.device.refused'));
    // The five existing devices still log in.
    const again = await login(username, 'pw', { $case: 'deviceId', value: sessions[4]!.deviceId });
    assert.equal(again.deviceId, sessions[4]!.deviceId);
  });

  test('concurrent new-device logins never take an account past 5 devices', async () => {
    const username = uniqueName('grace');
    await register(username, 'pw');
    // Finish messages first, so the eight FinishLogin calls really race in the service.
    const begun = await Promise.all(Array.from({ length: 8 }, () => beginLogin(username, 'pw')));
    const results = await Promise.allSettled(
      begun.map((b, i) =>
        gateway.call(Rpc.finishLogin, {
          loginId: b.started.loginId,
          finishLoginRequest: b.finishLoginRequest!,
          device: newDevice(`racer ${i}`),
        }),
      ),
    );
    const ok = results.filter((r) => r.status === 'fulfilled') as PromiseFulfilledResult<FinishLoginResponse>[];
    const refused = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
    assert.equal(ok.length, 5);
    assert.equal(refused.length, 3);
    for (const r of refused) assert.equal((r.reason as { code: number }).code, status.RESOURCE_EXHAUSTED);
    const { devices } = await gateway.call(Rpc.listDevices, {}, { identity: identityOf(ok[0]!.value) });
    assert.equal(devices.length, 5);
  });

  test('a device id of another account, or a malformed identity key, is refused', async () => {
    const a = uniqueName('heidi');
    const b = uniqueName('ivan');
    await register(a, 'pw');
    await register(b, 'pw');
    const aSession = await login(a, 'pw');
    await rejectsWithStatus(
      login(b, 'pw', { $case: 'deviceId', value: aSession.deviceId }),
      status.PERMISSION_DENIED,
      /not registered to the account/,
    );
    await rejectsWithStatus(
      login(b, 'pw', { $case: 'newDevice', value: { identityKey: randomBytes(31), name: 'x' } }),
      status.INVALID_ARGUMENT,
      /32-byte Ed25519 public key/,
    );
  });

  test('sessions and login attempts expire; a restart or replica shares the OPAQUE setup', async () => {
    const username = uniqueName('judy');
    // Registered on the first instance, logged in on a second one with short TTLs over the same database.
    await register(username, 'pw');
    const shortLived = await (
      await AuthService.create(configFor({ QPQ_SESSION_TTL: '1s', QPQ_LOGIN_TTL: '1s' }))
    ).start();
    const client = bed.clientAs('gateway', shortLived.grpcAddress);
    try {
      const session = await login(username, 'pw', newDevice(), client);
      await client.call(Rpc.validateSession, { sessionToken: session.sessionToken });
      const late = await beginLogin(username, 'pw', client);
      await sleep(1200);
      await rejectsWithStatus(
        client.call(Rpc.validateSession, { sessionToken: session.sessionToken }),
        status.UNAUTHENTICATED,
        'session expired or revoked; log in again',
      );
      await rejectsWithStatus(
        client.call(Rpc.finishLogin, {
          loginId: late.started.loginId,
          finishLoginRequest: late.finishLoginRequest!,
          device: newDevice(),
        }),
        status.UNAUTHENTICATED,
        'login expired or already used; start again',
      );
      // The sweeper removes the expired session row (the query above already refused it).
      const sessionRows = () =>
        shortLived.ctx.db
          .selectFrom('sessions')
          .select('token_hash')
          .where('device_id', '=', session.deviceId)
          .execute();
      assert.equal((await sessionRows()).length, 1);
      assert.ok((await new ExpirySweeper(shortLived.ctx.db, shortLived.ctx.logger).sweep()) >= 1);
      assert.equal((await sessionRows()).length, 0);
    } finally {
      client.close();
      await shortLived.stop();
    }
    await rejectsWithStatus(
      gateway.call(Rpc.validateSession, { sessionToken: randomBytes(32).toString('base64url') }),
      status.UNAUTHENTICATED,
    );
  });

  test('logout ends the device session; ResolveUser lists active devices; unknown users are NOT_FOUND', async () => {
    const username = uniqueName('ken');
    await register(username, 'pw');
    const first = await login(username, 'pw', newDevice('phone'));
    const second = await login(username, 'pw', newDevice('desk'));

    const resolved = await gateway.call(Rpc.resolveUser, { username }, { identity: identityOf(second) });
    assert.equal(resolved.address, `${username}@${DOMAIN}`);
    assert.deepEqual(
      resolved.devices.map((d) => d.deviceId),
      [first.deviceId, second.deviceId],
    );
    assert.equal(resolved.devices[0]!.identityKey.length, 32);
    await rejectsWithStatus(
      gateway.call(Rpc.resolveUser, { username: 'nosuchuser' }, { identity: identityOf(second) }),
      status.NOT_FOUND,
      'no such user: nosuchuser',
    );

    await gateway.call(Rpc.logout, {}, { identity: identityOf(first) });
    await rejectsWithStatus(
      gateway.call(Rpc.validateSession, { sessionToken: first.sessionToken }),
      status.UNAUTHENTICATED,
    );
    const stillIn = await gateway.call(Rpc.validateSession, { sessionToken: second.sessionToken });
    assert.equal(stillIn.deviceId, second.deviceId);
  });

  test('identity metadata from a caller that is not the gateway is ignored', async () => {
    const username = uniqueName('leo');
    await register(username, 'pw', stranger);
    const session = await login(username, 'pw', newDevice(), stranger);
    const identity = identityOf(session);
    await rejectsWithStatus(stranger.call(Rpc.listDevices, {}, { identity }), status.UNAUTHENTICATED);
    await rejectsWithStatus(stranger.call(Rpc.resolveUser, { username }, { identity }), status.UNAUTHENTICATED);
    await rejectsWithStatus(stranger.call(Rpc.logout, {}, { identity }), status.UNAUTHENTICATED);
    // Only the gateway may turn a session token into an identity.
    await rejectsWithStatus(
      stranger.call(Rpc.validateSession, { sessionToken: session.sessionToken }),
      status.PERMISSION_DENIED,
    );
    // The same identity through the gateway's certificate works.
    await gateway.call(Rpc.listDevices, {}, { identity });
  });

  test('audit events reach the QPQ_AUDIT stream without secrets', async () => {
    const username = uniqueName('mallory');
    let token = '';
    const events = await auditDuring(async () => {
      await register(username, 'pw');
      token = (await login(username, 'pw')).sessionToken;
    });
    const subjects = events.map((e) => e.subject);
    for (const s of ['account.registered', 'device.added', 'login.succeeded'])
      assert.ok(subjects.includes(`qpq.audit.${s}`), s);
    for (const e of events) {
      assert.ok(!e.body.includes(token), 'no session token in audit events');
      assert.ok(!/"(state|token|password|record)"/.test(e.body), e.body);
    }
    const jsm = await nc.jetstreamManager();
    const info = await jsm.streams.info('QPQ_AUDIT');
    assert.ok(info.state.messages >= events.length);
  });

  test('/metrics counts logins by outcome, registrations and ended sessions, and shows the Postgres pool', async () => {
    const metric = (name: string, labels: Record<string, string> = {}) =>
      metricValue(service.httpAddress, name, labels);
    const counts = async () => ({
      ok: await metric('qpq_auth_logins_total', { outcome: 'ok' }),
      failed: await metric('qpq_auth_logins_total', { outcome: 'failed' }),
      registrations: await metric('qpq_auth_registrations_total'),
      revoked: await metric('qpq_auth_sessions_revoked_total'),
    });
    const before = await counts();
    for (const [name, value] of Object.entries(before)) assert.ok(value !== undefined, `${name} is on /metrics`);

    const username = uniqueName('mia');
    await register(username, 'pw');
    await rejectsWithStatus(register(username, 'pw'), status.ALREADY_EXISTS, 'username is taken');
    const phone = await login(username, 'pw', newDevice('phone'));
    const phoneAgain = await login(username, 'pw', { $case: 'deviceId', value: phone.deviceId });
    const desk = await login(username, 'pw', newDevice('desk'));
    // A finish made for another login, and a replay of a finish already used.
    const wrong = await beginLogin(username, 'wrong pw');
    const right = await beginLogin(username, 'pw');
    await rejectsWithStatus(
      gateway.call(Rpc.finishLogin, {
        loginId: wrong.started.loginId,
        finishLoginRequest: right.finishLoginRequest!,
        device: newDevice(),
      }),
      status.UNAUTHENTICATED,
    );
    const used = { loginId: right.started.loginId, finishLoginRequest: right.finishLoginRequest!, device: newDevice() };
    await gateway.call(Rpc.finishLogin, used);
    await rejectsWithStatus(gateway.call(Rpc.finishLogin, used), status.UNAUTHENTICATED);
    // The phone's two sessions end by logout, the desk's one with its revocation.
    await gateway.call(Rpc.logout, {}, { identity: identityOf(phoneAgain) });
    await gateway.call(Rpc.revokeDevice, { deviceId: desk.deviceId }, { identity: identityOf(desk) });

    assert.deepEqual(await counts(), {
      ok: before.ok! + 4,
      failed: before.failed! + 2,
      registrations: before.registrations! + 1,
      revoked: before.revoked! + 3,
    });
    assert.equal(await metric('qpq_db_pool_max_connections'), 8);
    const idle = await metric('qpq_db_pool_connections', { state: 'idle' });
    const busy = await metric('qpq_db_pool_connections', { state: 'busy' });
    assert.ok(idle !== undefined && busy !== undefined && idle + busy >= 1, `${idle} idle, ${busy} busy`);
    assert.equal(await metric('qpq_db_pool_waiting_clients'), 0);
  });

  test('/readyz is ready while Postgres and NATS are reachable, and not ready when NATS goes away', async () => {
    const readyz = async (svc: AuthService) =>
      (await fetch(`http://${svc.httpAddress}/readyz`, { signal: AbortSignal.timeout(5000) })).status;
    assert.equal(await readyz(service), 200);

    const ownNats = await startNats();
    const svc = await (await AuthService.create(configFor({ QPQ_NATS_URL: ownNats.url }))).start();
    try {
      assert.equal(await readyz(svc), 200);
      await ownNats.stop();
      const deadline = Date.now() + 5000;
      while ((await readyz(svc)) !== 503) {
        assert.ok(Date.now() < deadline, '/readyz still 200 five seconds after NATS stopped');
        await sleep(100);
      }
    } finally {
      await svc.stop();
      await ownNats.stop();
    }
  });
});

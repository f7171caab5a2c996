import type { FinishLoginRequest, FinishLoginResponse } from '@qpq/proto';
import { InvalidArgumentError, type UnaryHandler } from '@qpq/runtime';
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { AppContext } from '../context.js';
import { nowPlus } from '../db/time.js';
import { recordDeviceEvent } from '../device-events.js';
import {
  DeviceLimitError,
  LoginExpiredError,
  RevokedDeviceError,
  UnknownDeviceError,
  WrongCredentialsError,
} from '../errors.js';
import { isUuid } from '../ids.js';
import { opaque, toLibrary } from '../opaque.js';
import { newSessionToken } from '../sessions.js';
import { addressOf } from '../usernames.js';

const IDENTITY_KEY_BYTES = 32;
const MAX_DEVICE_NAME = 64;

type DeviceChoice = { kind: 'existing'; deviceId: string } | { kind: 'new'; identityKey: Buffer; name: string };

/**
 * OPAQUE login, step 2, then the device and a session. The login attempt is consumed by the first
 * finish that names it (a DELETE … RETURNING), so a replayed finish message is refused even though
 * the library itself would accept it twice. A new device's DeviceEvent enters the outbox in the same
 * transaction; after commit the account's other devices get DevicesChanged.
 */
export function finishLogin(ctx: AppContext): UnaryHandler<FinishLoginRequest, FinishLoginResponse> {
  return async (request) => {
    // Check what the client chose before consuming the attempt: a malformed request costs no login.
    const choice = parseDeviceChoice(request.device);

    const attempt = isUuid(request.loginId)
      ? await ctx.db
          .deleteFrom('login_attempts')
          .where('id', '=', request.loginId)
          .returning(['account_id', 'username', 'state', sql<boolean>`expires_at > now()`.as('live')])
          .executeTakeFirst()
      : undefined;
    if (!attempt) {
      ctx.metrics.login('failed');
      ctx.audit.record('login.replay_refused', isUuid(request.loginId) ? { login_id: request.loginId } : {});
      throw new LoginExpiredError();
    }
    const { username } = attempt;
    if (!attempt.live) {
      ctx.metrics.login('failed');
      ctx.audit.record('login.failed', { username, reason: 'expired' });
      throw new LoginExpiredError();
    }

    // The fake state of an unknown user runs through the library too, so both fail alike.
    const passed = opaqueLoginFinishes(attempt.state, request.finishLoginRequest);
    if (!passed || attempt.account_id === null) {
      ctx.metrics.login('failed');
      ctx.audit.record('login.failed', { username, reason: 'wrong_credentials' });
      throw new WrongCredentialsError();
    }
    const accountId = attempt.account_id;

    let session: { token: string; deviceId: string; expiresAt: Date; added: boolean; others: string[] };
    try {
      session = await ctx.db.transaction().execute(async (trx) => {
        // Serialises device changes per account: the device count below cannot race another login.
        await trx.selectFrom('accounts').select('id').where('id', '=', accountId).forUpdate().executeTakeFirstOrThrow();
        let deviceId: string;
        if (choice.kind === 'existing') {
          const device = await trx
            .selectFrom('devices')
            .select(['id', 'revoked_at'])
            .where('id', '=', choice.deviceId)
            .where('account_id', '=', accountId)
            .executeTakeFirst();
          if (!device) throw new UnknownDeviceError();
          // The password is proven, so telling revoked from unknown reveals nothing to a stranger.
          if (device.revoked_at !== null) throw new RevokedDeviceError();
          deviceId = device.id;
        } else {
          const { active } = await trx
            .selectFrom('devices')
            .select((eb) => eb.fn.countAll<bigint>().as('active'))
            .where('account_id', '=', accountId)
            .where('revoked_at', 'is', null)
            .executeTakeFirstOrThrow();
          if (Number(active) >= ctx.cfg.maxDevices) throw new DeviceLimitError(ctx.cfg.maxDevices);
          deviceId = randomUUID();
          await trx
            .insertInto('devices')
            .values({ id: deviceId, account_id: accountId, name: choice.name, identity_key: choice.identityKey })
            .execute();
          await recordDeviceEvent(trx, ctx.cfg.domain, {
            op: 'add',
            accountId,
            username,
            deviceId,
            identityKey: choice.identityKey,
          });
        }
        const { token, hash } = newSessionToken();
        const { expires_at } = await trx
          .insertInto('sessions')
          .values({
            token_hash: hash,
            account_id: accountId,
            device_id: deviceId,
            expires_at: nowPlus(ctx.cfg.sessionTtlMs),
          })
          .returning('expires_at')
          .executeTakeFirstOrThrow();
        const others =
          choice.kind === 'new'
            ? await trx
                .selectFrom('devices')
                .select('id')
                .where('account_id', '=', accountId)
                .where('revoked_at', 'is', null)
                .where('id', '!=', deviceId)
                .execute()
            : [];
        return {
          token,
          deviceId,
          expiresAt: expires_at,
          added: choice.kind === 'new',
          others: others.map((d) => d.id),
        };
      });
    } catch (err) {
      if (err instanceof DeviceLimitError || err instanceof UnknownDeviceError || err instanceof RevokedDeviceError) {
        ctx.metrics.login('failed');
      }
      if (err instanceof DeviceLimitError) {
        ctx.audit.record('device.refused', { username, account_id: accountId, reason: 'device_limit' });
      } else if (err instanceof UnknownDeviceError) {
        ctx.audit.record('device.refused', { username, account_id: accountId, reason: 'unknown' });
      } else if (err instanceof RevokedDeviceError) {
        ctx.audit.record('device.refused', { username, account_id: accountId, reason: 'revoked' });
      }
      throw err;
    }

    if (session.added) {
      ctx.deviceEvents.kick();
      ctx.pushes.devicesChanged(accountId, session.deviceId, false, session.others);
      ctx.audit.record('device.added', { username, account_id: accountId, device_id: session.deviceId });
    }
    ctx.metrics.login('ok');
    ctx.audit.record('login.succeeded', { username, account_id: accountId, device_id: session.deviceId });
    return {
      sessionToken: session.token,
      accountId,
      deviceId: session.deviceId,
      username,
      address: addressOf(username, ctx.cfg.domain),
      expiresAtMs: BigInt(session.expiresAt.getTime()),
    };
  };
}

/** Whether the client proved knowledge of the password; the library throws when it did not. */
function opaqueLoginFinishes(serverLoginState: string, finishLoginRequest: Uint8Array): boolean {
  try {
    opaque.server.finishLogin({ serverLoginState, finishLoginRequest: toLibrary(finishLoginRequest) });
    return true;
  } catch {
    return false;
  }
}

function parseDeviceChoice(device: FinishLoginRequest['device']): DeviceChoice {
  switch (device?.$case) {
    case 'deviceId':
      // An id that is not even a UUID cannot belong to the account.
      if (!isUuid(device.value)) throw new UnknownDeviceError();
      return { kind: 'existing', deviceId: device.value.toLowerCase() };
    case 'newDevice': {
      const { identityKey, name } = device.value;
      if (identityKey.byteLength !== IDENTITY_KEY_BYTES) {
        throw new InvalidArgumentError(`a device identity key is a ${IDENTITY_KEY_BYTES}-byte Ed25519 public key`);
      }
      const trimmed = name.trim();
      // Names are shown in other people's terminals: no control characters (escape sequences).
      if (trimmed.length === 0 || trimmed.length > MAX_DEVICE_NAME || /\p{Cc}/u.test(trimmed)) {
        throw new InvalidArgumentError(`a device name is 1 to ${MAX_DEVICE_NAME} printable characters`);
      }
      return { kind: 'new', identityKey: Buffer.from(identityKey), name: trimmed };
    }
    default:
      throw new InvalidArgumentError('choose a device: device_id to log in again, or new_device to add one');
  }
}

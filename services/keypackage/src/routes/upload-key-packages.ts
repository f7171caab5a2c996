import type { UploadKeyPackagesRequest, UploadKeyPackagesResponse } from '@qpq/proto';
import { requireIdentity, type UnaryHandler } from '@qpq/runtime';
import { createHash } from 'node:crypto';
import type { AppContext } from '../context.js';
import {
  BadKeyPackageSignatureError,
  DevicePoolFullError,
  ForeignCredentialError,
  KeyPackageTooLargeError,
  NotAKeyPackageError,
  RevokedDeviceError,
  TooManyPerUploadError,
  WrongCipherSuiteError,
} from '../errors.js';
import { checkKeyPackage, deviceCredentialIdentity } from '../key-package-check.js';
import { countOneTime, isRevoked, lockDevicePool } from '../pool.js';

interface Candidate {
  which: string;
  bytes: Uint8Array;
}

/**
 * Stores the calling device's one-time KeyPackages and, when given, replaces its last-resort one.
 * Every KeyPackage is checked before anything is stored: the project's cipher suite, this device's
 * credential, a valid self-signature. One upload is all or nothing. A device auth revoked may
 * upload nothing (its session is gone too, but the gateway may still hold it for a moment).
 */
export function uploadKeyPackages(ctx: AppContext): UnaryHandler<UploadKeyPackagesRequest, UploadKeyPackagesResponse> {
  return async (request, call) => {
    const { accountId, deviceId, username } = requireIdentity(call);
    const { cfg } = ctx;
    if (request.keyPackages.length > cfg.maxKeyPackagesPerUpload) {
      throw new TooManyPerUploadError(request.keyPackages.length, cfg.maxKeyPackagesPerUpload);
    }
    const oneTime: Candidate[] = request.keyPackages.map((bytes, i) => ({ which: `KeyPackage ${i + 1}`, bytes }));
    const lastResort: Candidate | undefined =
      request.lastResortKeyPackage.byteLength > 0
        ? { which: 'the last-resort KeyPackage', bytes: request.lastResortKeyPackage }
        : undefined;
    const identity = deviceCredentialIdentity(username, cfg.domain, deviceId);
    for (const candidate of lastResort ? [...oneTime, lastResort] : oneTime) {
      await check(candidate, identity, cfg.maxKeyPackageBytes);
    }

    const row = (c: Candidate, isLastResort: boolean) => ({
      account_id: accountId,
      username,
      device_id: deviceId,
      data: Buffer.from(c.bytes),
      hash: createHash('sha256').update(c.bytes).digest(),
      last_resort: isLastResort,
    });
    const answer = await ctx.db.transaction().execute(async (trx) => {
      // One upload per device at a time, so the pool limit below holds under concurrent uploads, and
      // none after the device's revocation was withdrawn.
      await lockDevicePool(trx, deviceId);
      if (await isRevoked(trx, deviceId)) throw new RevokedDeviceError();
      let stored = 0;
      if (oneTime.length > 0) {
        const inserted = await trx
          .insertInto('key_packages')
          .values(oneTime.map((c) => row(c, false)))
          .onConflict((oc) => oc.columns(['device_id', 'hash']).where('last_resort', '=', false).doNothing())
          .returning('id')
          .execute();
        stored += inserted.length;
      }
      const oneTimeRemaining = await countOneTime(trx, deviceId);
      if (oneTimeRemaining > cfg.maxKeyPackagesPerDevice) {
        throw new DevicePoolFullError(oneTimeRemaining - stored, cfg.maxKeyPackagesPerDevice);
      }
      if (lastResort) {
        await trx
          .deleteFrom('key_packages')
          .where('device_id', '=', deviceId)
          .where('last_resort', '=', true)
          .execute();
        await trx.insertInto('key_packages').values(row(lastResort, true)).execute();
        stored += 1;
      }
      return { stored, oneTimeRemaining };
    });
    ctx.metrics.uploaded.add(answer.stored);
    return answer;
  };
}

async function check({ which, bytes }: Candidate, identity: string, maxBytes: number): Promise<void> {
  if (bytes.byteLength > maxBytes) throw new KeyPackageTooLargeError(which, bytes.byteLength, maxBytes);
  const problem = await checkKeyPackage(bytes, identity);
  switch (problem?.kind) {
    case undefined:
      return;
    case 'not-a-key-package':
      throw new NotAKeyPackageError(which);
    case 'wrong-suite':
      throw new WrongCipherSuiteError(problem.suite);
    case 'foreign-credential':
      throw new ForeignCredentialError(problem.identity, identity);
    case 'bad-signature':
      throw new BadKeyPackageSignatureError(which);
  }
}

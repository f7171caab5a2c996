// Who is who, as auth lists it and the key-transparency log proves it: accounts, their active devices
// and identity keys, and KeyPackages for those devices checked against them. One Directory lives for one operation (a batch of envelopes, a
// group change), so each account is asked about once and the answers agree with each other.
import { inspectKeyPackage } from '@qpq/crypto';
import { AuthServiceService, KeyPackageServiceService } from '@qpq/proto';
import { GrpcCode, NoSuchUserError, QpqClientError, isRpcFailure } from './errors.js';
import type { ClientCore } from './core.js';
import { keyPackageProblem, type KnownAccount } from './member-check.js';

export interface ClaimedDevice {
  deviceId: string;
  keyPackage: Uint8Array;
}

export class Directory {
  private readonly accounts = new Map<string, Promise<KnownAccount | undefined>>();

  constructor(private readonly core: Pick<ClientCore, 'session' | 'kt'>) {}

  /** The account and its active devices; undefined when auth knows no such user. */
  account(username: string): Promise<KnownAccount | undefined> {
    let found = this.accounts.get(username);
    if (!found) {
      found = this.ask(username);
      this.accounts.set(username, found);
      found.catch(() => this.accounts.delete(username));
    }
    return found;
  }

  /** Like account(), but a user auth does not know is an error naming them. */
  async requireAccount(username: string): Promise<KnownAccount> {
    const account = await this.account(username);
    if (!account) throw new NoSuchUserError(username);
    return account;
  }

  /** Forgets what was asked, so the next question goes to auth again (devices change). */
  refresh(username: string): void {
    this.accounts.delete(username);
  }

  /**
   * Claims one KeyPackage for each of `deviceIds` of `username` (all active devices but the caller when
   * empty) and refuses any that does not belong to the device it was handed out for.
   */
  async claim(username: string, deviceIds: readonly string[] = []): Promise<ClaimedDevice[]> {
    let res;
    try {
      res = await this.core.session.call(KeyPackageServiceService.claimKeyPackages, {
        username,
        deviceIds: [...deviceIds],
      });
    } catch (err) {
      // None of those devices has uploaded KeyPackages (yet): nothing to claim.
      if (isRpcFailure(err) && err.code === GrpcCode.NOT_FOUND) return [];
      throw err;
    }
    let account = await this.requireAccount(username);
    // A device may have logged in between the two calls: ask auth again before calling it unknown.
    if (!res.keyPackages.every((k) => account.devices.some((d) => d.deviceId === k.deviceId))) {
      this.refresh(username);
      account = await this.requireAccount(username);
    }
    for (const k of res.keyPackages) {
      let problem: string | undefined;
      try {
        problem = keyPackageProblem(await inspectKeyPackage(k.keyPackage), k.deviceId, account);
      } catch (err) {
        problem = `the KeyPackage given for device ${k.deviceId} is malformed (${err instanceof Error ? err.message : String(err)})`;
      }
      if (problem !== undefined) throw new QpqClientError(`refusing to add ${account.address}: ${problem}`);
    }
    return res.keyPackages.map((k) => ({ deviceId: k.deviceId, keyPackage: k.keyPackage }));
  }

  /** Auth's answer, with every device key it lists proved by the key-transparency log. */
  private async ask(username: string): Promise<KnownAccount | undefined> {
    let account: KnownAccount;
    try {
      const res = await this.core.session.call(AuthServiceService.resolveUser, { username });
      account = { address: res.address, devices: res.devices };
    } catch (err) {
      if (isRpcFailure(err) && (err.code === GrpcCode.NOT_FOUND || err.code === GrpcCode.INVALID_ARGUMENT)) {
        return undefined;
      }
      throw err;
    }
    await this.core.kt.vouch(account);
    return account;
  }
}

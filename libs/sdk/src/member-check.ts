// Who is really in a group. An MLS credential names a device ("user@domain/deviceId"), but that name is
// whatever the member who added the leaf wrote: anyone who claims one of our KeyPackages can build a group
// whose other leaf says "alice". The server authenticates who sent an envelope, and auth knows each
// device's identity key (the MLS signature key it registered at login); these checks tie the two together.
//
// Trust in auth's answer is temporary: key transparency will replace it, so a lying server can be caught.
import { parseDeviceIdentity, type GroupMember } from '@qpq/crypto';

/** A device as auth lists it (ResolveUser). */
export interface KnownDevice {
  deviceId: string;
  identityKey: Uint8Array;
}

/** An account as auth lists it: its address and active devices. */
export interface KnownAccount {
  address: string;
  devices: readonly KnownDevice[];
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean =>
  a.length === b.length && a.every((byte, i) => byte === b[i]);

/**
 * Why a DM group joined from a Welcome must be refused, or undefined when it may be kept:
 * - the server-authenticated sender of the Welcome is a member under exactly its own identity;
 * - every member is a device of this account or of the peer (the sender's account);
 * - every member's signature key is the identity key auth holds for that device.
 */
export function dmWelcomeProblem(
  members: readonly GroupMember[],
  senderIdentity: string,
  self: KnownAccount,
  peer: KnownAccount,
): string | undefined {
  return welcomeProblem(members, senderIdentity, [self, peer]);
}

/**
 * Why a group joined from a Welcome must be refused, or undefined when it may be kept: its sender is a
 * member under exactly its own identity, and every member is a device of one of `accounts` whose
 * signature key is the identity key auth holds for that device.
 */
export function welcomeProblem(
  members: readonly GroupMember[],
  senderIdentity: string,
  accounts: readonly KnownAccount[],
): string | undefined {
  const check = welcomeCheck(members, senderIdentity, accounts);
  return check.problem ?? Object.values(check.untrusted)[0];
}

/**
 * A Welcome checked member by member. `problem`: refuse the group (a member of an account not in
 * `accounts`, a key that is not its device's identity key, a sender that is not a member). `untrusted`:
 * members auth does not list as devices (revoked ones, or forged names) — the group may be kept, but
 * nothing is sent in it until they are removed.
 */
export function welcomeCheck(
  members: readonly GroupMember[],
  senderIdentity: string,
  accounts: readonly KnownAccount[],
): { problem?: string; untrusted: Record<string, string> } {
  const untrusted: Record<string, string> = {};
  if (!members.some((m) => m.identity === senderIdentity)) {
    return { problem: `its sender ${senderIdentity} is not a member of the group`, untrusted };
  }
  for (const member of members) {
    const problem = memberProblem(member, accounts);
    if (problem === undefined) continue;
    if (problem.unlisted) untrusted[member.identity] = problem.text;
    else return { problem: problem.text, untrusted };
  }
  return { untrusted };
}

/** Why a member added by a Commit must not be trusted, or undefined when auth lists it with that key. */
export function addedMemberProblem(member: GroupMember, account: KnownAccount | undefined): string | undefined {
  if (!account) return `${member.identity} belongs to no account auth knows`;
  return memberProblem(member, [account])?.text;
}

/** Why a KeyPackage handed out for `peer` must not be used, or undefined when it names one of their devices. */
export function keyPackageProblem(
  keyPackage: { identity: string; signaturePublicKey: Uint8Array },
  claimedDeviceId: string,
  peer: KnownAccount,
): string | undefined {
  if (keyPackage.identity !== `${peer.address}/${claimedDeviceId}`) {
    return `the KeyPackage given for device ${claimedDeviceId} names ${keyPackage.identity}`;
  }
  return memberProblem(keyPackage, [peer], 'the KeyPackage of')?.text;
}

/** `unlisted`: the account is known but auth lists no such device (revoked, or never registered). */
function memberProblem(
  member: GroupMember,
  accounts: readonly KnownAccount[],
  what = 'member',
): { text: string; unlisted?: true } | undefined {
  let parsed: { address: string; deviceId: string };
  try {
    parsed = parseDeviceIdentity(member.identity);
  } catch {
    return { text: `${what} ${JSON.stringify(member.identity)} is not a device identity` };
  }
  const account = accounts.find((a) => a.address === parsed.address);
  if (!account) {
    const owners = accounts.map((a) => a.address);
    return {
      text: `${what} ${member.identity} belongs to ${owners.length > 1 ? `neither ${owners.join(' nor ')}` : `another account than ${owners.join('')}`}`,
    };
  }
  const device = account.devices.find((d) => d.deviceId === parsed.deviceId);
  if (!device) return { text: `${what} ${member.identity} is not a device of ${account.address}`, unlisted: true };
  if (!sameBytes(device.identityKey, member.signaturePublicKey)) {
    return { text: `${what} ${member.identity} signs with another key than that device's identity key` };
  }
  return undefined;
}

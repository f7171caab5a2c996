// What the ktlog scenarios share: the service started alone in its own process on a fresh database,
// a client to it, and log entries made up in bulk.
import { encodeLogEntry } from '@qpq/crypto';
import { readKtlogConfig, type KtlogConfig } from '@qpq/ktlog';
import { leafHash } from '@qpq/merkle';
import { KeyTransparencyServiceService as Rpc, type SignedTreeHead } from '@qpq/proto';
import type { RpcClient } from '@qpq/runtime';
import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
// Not exported by @qpq/ktlog (its index is the service, not its internals): read from its source.
import type { BenchContext } from '../scenario.js';
import { startServiceProcess } from '../service-process.js';
import type { NewEntry } from '@qpq/ktlog';

/** Bytes of a made-up identity key: an Ed25519 public key, as auth announces them. */
export const IDENTITY_KEY_BYTES = 32;
const HEAD_POLL_MS = 10;

export interface RunningKtlog {
  /** The configuration the service runs with (from the same environment it was given). */
  cfg: KtlogConfig;
  databaseUrl: string;
  client: RpcClient;
  /** Stops the service (it drains); the database stays until the servers stop. */
  stop(): Promise<void>;
}

/** Starts ktlog in its own process on a fresh database `database`; resolves once it is ready. */
export async function startKtlog(ctx: BenchContext, database: string): Promise<RunningKtlog> {
  const servers = await ctx.servers();
  const env = await servers.serviceEnv('ktlog', database);
  const databaseUrl = env.QPQ_DATABASE_URL as string;
  // Read as the service will read it (QPQ_KTLOG_BATCH in the benchmark's environment reaches both).
  const cfg = readKtlogConfig({ ...process.env, ...env });
  const started = await startServiceProcess({ service: 'ktlog', env, logFile: join(ctx.logDir, `${database}.log`) });
  const stop = ctx.own(() => started.stop());
  return { cfg, databaseUrl, client: servers.client('gateway', started.grpcAddress), stop };
}

/** `count` distinct entries of new devices, spread over a thousand users. */
export function newEntries(count: number, now = Date.now()): NewEntry[] {
  const keys = randomBytes(count * IDENTITY_KEY_BYTES);
  return Array.from({ length: count }, (_, i) => ({
    eventId: randomUUID(),
    op: 1, // DeviceEvent_Op.OP_ADD
    address: `bench${i % 1000}@example.test`,
    deviceId: randomUUID(),
    identityKey: new Uint8Array(keys.buffer, keys.byteOffset + i * IDENTITY_KEY_BYTES, IDENTITY_KEY_BYTES),
    timestampMs: BigInt(now + i),
  }));
}

/** The RFC 9162 leaf hash the log must hold for an entry, computed here independently of the service. */
export function leafOf(entry: NewEntry): Uint8Array {
  return leafHash(encodeLogEntry(entry));
}

/** Polls GetTreeHead until the served head covers `size` entries; throws after `timeoutMs`. */
export async function headReaching(
  client: RpcClient,
  size: number,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<SignedTreeHead> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    signal.throwIfAborted();
    const head = await client.call(Rpc.getTreeHead, {});
    if (head.treeSize >= BigInt(size)) return head;
    if (Date.now() > deadline) {
      throw new Error(
        `the served tree head did not reach ${size} entries within ${timeoutMs / 1000} s (at ${head.treeSize})`,
      );
    }
    await new Promise((r) => setTimeout(r, HEAD_POLL_MS));
  }
}

/** A short name for a tree size in a figure's name: 1000 → `1k`, 1000000 → `1m`. */
export function sizeLabel(n: number): string {
  if (n >= 1_000_000 && n % 1_000_000 === 0) return `${n / 1_000_000}m`;
  if (n >= 1_000 && n % 1_000 === 0) return `${n / 1_000}k`;
  return String(n);
}

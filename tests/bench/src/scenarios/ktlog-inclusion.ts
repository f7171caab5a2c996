// ktlog.inclusion: the latency of GetInclusionProof against the newest head of a large log, each
// proof verified, against the same measurement on a log of a thousand entries. Proofs read O(log n)
// stored subtrees, so the ratio should stay near 1 however large the log grows.
import { ed25519RawPublicKey, verifyTreeHead } from '@qpq/crypto';
import { loadSigningKey, openDatabase } from '@qpq/db';
import { hashesEqual, verifyInclusion } from '@qpq/merkle';
import { KeyTransparencyServiceService as Rpc, type SignedTreeHead } from '@qpq/proto';
import type { RpcClient } from '@qpq/runtime';
import type { KeyObject } from 'node:crypto';
import { performance } from 'node:perf_hooks';
// The service's own append (one transaction, subtrees and a signed head), called in large batches:
// publishing a million events through JetStream would take most of the run.
import type { Measurement } from '../results.js';
import type { BenchContext, Scenario } from '../scenario.js';
import { percentile } from '../stats.js';
import { LeafHashes } from './leaf-hashes.js';
import { headReaching, leafOf, newEntries, sizeLabel, startKtlog } from './ktlog-support.js';
import { appendEntries, type KtlogTables } from '@qpq/ktlog';

const SMALL_SIZE = 1_000;
/**
 * Also with --quick: seeding a million entries takes about a minute on a 2-core machine (≈20k/s),
 * within the quick run's budget. Were it to take much longer, --quick would seed fewer and the
 * figure's name would say so (sizeLabel).
 */
const LARGE_SIZE = 1_000_000;
const PROOFS = 5_000;
const QUICK_PROOFS = 1_000;
/** Calls before measuring: TLS session, connection pools, JIT. */
const WARMUP_PROOFS = 100;
const SEED_BATCH = 20_000;

export const ktlogInclusion: Scenario = {
  name: 'ktlog.inclusion',
  description: 'GetInclusionProof latency (p50, p99) against the newest head, every proof verified; 1M vs 1k entries',
  async run(ctx) {
    const large = LARGE_SIZE;
    const proofs = ctx.quick ? QUICK_PROOFS : PROOFS;
    const ktlog = await startKtlog(ctx, 'bench_ktlog_inclusion');
    const db = await openDatabase<KtlogTables>({ url: ktlog.databaseUrl, schema: 'ktlog' });
    const closeDb = ctx.own(() => db.destroy());
    try {
      // The key the service created at its first start: heads signed here are the service's heads.
      const key = await loadSigningKey(db, {
        name: 'tree-head',
        path: ktlog.cfg.signingKeyPath,
        envName: 'QPQ_KTLOG_SIGNING_KEY',
      });
      const empty = await headReaching(ktlog.client, 0, 10_000, ctx.signal);
      if (!hashesEqual(ed25519RawPublicKey(key), empty.logPublicKey)) {
        throw new Error('not the log key the service signs with');
      }
      const leaves = new LeafHashes(large);
      const seed = (size: number) => seedTo(ctx, db, key, leaves, size);

      await seed(SMALL_SIZE);
      const small = await measure(ctx, ktlog.client, leaves, SMALL_SIZE, proofs);
      ctx.progress(`ktlog.inclusion: seeding the log to ${large.toLocaleString('en-US')} entries`);
      const seedStart = performance.now();
      await seed(large);
      const seedSeconds = (performance.now() - seedStart) / 1000;
      const big = await measure(ctx, ktlog.client, leaves, large, proofs);

      const smallName = sizeLabel(SMALL_SIZE);
      const largeName = sizeLabel(large);
      const seeded = {
        seed_s: Math.round(seedSeconds * 10) / 10,
        seed_per_s: Math.round((large - SMALL_SIZE) / seedSeconds),
      };
      const results: Measurement[] = [
        { name: `ktlog.inclusion_ms_${smallName}`, value: small.p50, unit: 'ms', params: small.params },
        { name: `ktlog.inclusion_p99_ms_${smallName}`, value: small.p99, unit: 'ms', params: small.params },
        {
          name: `ktlog.inclusion_ms_${largeName}`,
          value: big.p50,
          unit: 'ms',
          params: { ...big.params, ...seeded },
          baseline: `ktlog.inclusion_ms_${smallName}`,
        },
        {
          name: `ktlog.inclusion_p99_ms_${largeName}`,
          value: big.p99,
          unit: 'ms',
          params: big.params,
          baseline: `ktlog.inclusion_p99_ms_${smallName}`,
        },
      ];
      return results;
    } finally {
      await closeDb();
      await ktlog.stop();
    }
  },
};

/** Appends made-up entries with the service's append until the log holds `size`, keeping their leaf hashes. */
async function seedTo(
  ctx: BenchContext,
  db: Parameters<typeof appendEntries>[0],
  key: KeyObject,
  leaves: LeafHashes,
  size: number,
): Promise<void> {
  const step = Math.max(size / 10, SEED_BATCH);
  const from = leaves.size;
  let nextReport = from + step;
  const started = performance.now();
  while (leaves.size < size) {
    ctx.signal.throwIfAborted();
    const entries = newEntries(Math.min(SEED_BATCH, size - leaves.size));
    const { appended, head } = await appendEntries(db, entries, key, Date.now);
    if (appended !== entries.length || head?.treeSize !== BigInt(leaves.size + entries.length)) {
      throw new Error(`seeding: appended ${appended} of ${entries.length}, head at ${head?.treeSize}`);
    }
    for (const e of entries) leaves.push(leafOf(e));
    if (leaves.size >= nextReport && leaves.size < size) {
      const rate = Math.round((leaves.size - from) / ((performance.now() - started) / 1000));
      ctx.progress(`  ${leaves.size.toLocaleString('en-US')} entries (${rate.toLocaleString('en-US')}/s)`);
      nextReport += step;
    }
  }
}

interface Latencies {
  p50: number;
  p99: number;
  params: Record<string, number>;
}

/**
 * Sequential GetInclusionProof calls for random entries against the newest head (which must cover
 * exactly `size`), each proof verified against the head's root with the leaf hash computed here: a
 * single proof that fails aborts the run.
 */
async function measure(
  ctx: BenchContext,
  client: RpcClient,
  leaves: LeafHashes,
  size: number,
  proofs: number,
): Promise<Latencies> {
  const head: SignedTreeHead = await client.call(Rpc.getTreeHead, {});
  if (head.treeSize !== BigInt(size)) throw new Error(`served head covers ${head.treeSize} entries, expected ${size}`);
  if (!verifyTreeHead(head)) throw new Error('the served tree head does not verify');
  ctx.progress(`ktlog.inclusion: ${proofs} proofs at ${size.toLocaleString('en-US')} entries`);
  const samples: number[] = [];
  let hashes = 0;
  for (let k = 0; k < WARMUP_PROOFS + proofs; k++) {
    ctx.signal.throwIfAborted();
    const index = Math.floor(Math.random() * size);
    const start = performance.now();
    const proof = await client.call(Rpc.getInclusionProof, { index: BigInt(index), treeSize: head.treeSize });
    const ms = performance.now() - start;
    if (!verifyInclusion(index, size, leaves.at(index), proof.hashes, head.rootHash)) {
      throw new Error(`the inclusion proof of entry ${index} in the tree of ${size} does not verify`);
    }
    if (k < WARMUP_PROOFS) continue;
    samples.push(ms);
    hashes += proof.hashes.length;
  }
  return {
    p50: percentile(samples, 50),
    p99: percentile(samples, 99),
    params: { tree_size: size, proofs, avg_proof_hashes: Math.round((hashes / proofs) * 10) / 10, failures: 0 },
  };
}

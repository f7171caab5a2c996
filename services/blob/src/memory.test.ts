/**
 * Memory stays flat while the largest file passes through the service: a blob of
 * fileCiphertextSize(50 MiB) is uploaded and downloaded through the in-process service (by an
 * in-process client that makes and checks the bytes chunk by chunk), once per storage backend. Its own
 * file, so the process measured holds nothing else.
 *
 * What is asserted is the resident memory of the process (service and client together): with GCs
 * forced (a scavenge at every sample, a full GC every GC_EVERY_MS) it may grow by at most
 * MAX_GROWTH_MIB in each direction, where a service that kept the file grows by ~45 MiB (checked). The
 * GCs are forced so that the figure is what the process holds, not how far V8 happened to let garbage
 * pile up before collecting it on its own (every chunk is copied a few times on its way: TLS, HTTP/2,
 * gRPC, the pg driver's bind message). A second pass without forced GCs reports that figure too.
 */
import { fileCiphertextSize } from '@qpq/crypto';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { STORAGE_KINDS } from './config.js';
import { blobUnderTest, newAccount } from './test-bed.js';
import { beginOf, pseudoRandomChunks, type BlobTestClient } from './test-client.js';

const MiB = 1024 * 1024;
const MAX_GROWTH_MIB = 30;
const SAMPLE_MS = 10;
const GC_EVERY_MS = 100;

// The test runner gives no way to pass --expose-gc to one file; this is the documented flag, set late.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as (options?: { type: 'minor' | 'major' }) => void;

/**
 * Watches resident memory from now until stop(), sampling every SAMPLE_MS; with `collect`, each sample
 * follows a scavenge, or a full GC every GC_EVERY_MS. Returns the peak growth in MiB.
 */
function watchMemory(collect: boolean) {
  if (collect) gc();
  const base = process.memoryUsage.rss();
  let peak = base;
  let lastGc = performance.now();
  const sample = () => {
    if (collect && performance.now() - lastGc >= GC_EVERY_MS) {
      gc();
      lastGc = performance.now();
    } else if (collect) {
      gc({ type: 'minor' });
    }
    peak = Math.max(peak, process.memoryUsage.rss());
  };
  const timer = setInterval(sample, SAMPLE_MS);
  return {
    stop(): number {
      clearInterval(timer);
      sample();
      return (peak - base) / MiB;
    },
  };
}

interface Pass {
  /** Peak growth of resident memory, MiB. */
  upload: number;
  download: number;
  uploadMiBs: number;
  downloadMiBs: number;
}

/** Uploads and downloads `size` bytes made from `seed`, watching memory in each half. */
async function passFile(
  client: BlobTestClient,
  who: ReturnType<typeof newAccount>,
  seed: string,
  size: number,
  collect: boolean,
): Promise<Pass> {
  const hash = createHash('sha256');
  for (const chunk of pseudoRandomChunks(seed, size)) hash.update(chunk);
  const sha256 = hash.digest();

  let watch = watchMemory(collect);
  let started = performance.now();
  const { response } = await client.upload(who, beginOf({ size, sha256 }), pseudoRandomChunks(seed, size));
  const upload = watch.stop();
  const uploadMiBs = size / MiB / ((performance.now() - started) / 1000);
  assert.equal(response.complete, true);

  watch = watchMemory(collect);
  started = performance.now();
  const received = createHash('sha256');
  const { bytes } = await client.download(who, response.blobId, 0n, (chunk) => void received.update(chunk));
  const download = watch.stop();
  const downloadMiBs = size / MiB / ((performance.now() - started) / 1000);
  assert.equal(bytes, size);
  assert.ok(received.digest().equals(sha256), 'the download is byte-identical');
  return { upload, download, uploadMiBs, downloadMiBs };
}

function describePass(p: Pass): string {
  return (
    `upload RSS +${p.upload.toFixed(1)} MiB (${p.uploadMiBs.toFixed(1)} MiB/s), ` +
    `download RSS +${p.download.toFixed(1)} MiB (${p.downloadMiBs.toFixed(1)} MiB/s)`
  );
}

for (const storage of STORAGE_KINDS) {
  describe(`memory with ${storage} storage`, () => {
    // A loaded machine may pause longer than the beds' short idle timeout between two chunks.
    const t = blobUnderTest(storage, { QPQ_BLOB_IDLE_TIMEOUT: '60s' });
    const alice = newAccount('alice');

    it(
      `holds at most ${MAX_GROWTH_MIB} MiB more while a 50 MiB file is uploaded and downloaded`,
      {
        timeout: 300_000,
      },
      async () => {
        assert.equal(t.cfg.maxFileBytes, 50 * MiB);
        const size = fileCiphertextSize(t.cfg.maxFileBytes); // the largest blob allowed
        // Every code path once (TLS, pg, transactions, streams), so what follows measures the file.
        await passFile(t.client, alice, `${storage}-warm-up`, 3 * MiB, false);

        const held = await passFile(t.client, alice, `${storage}-held`, size, true);
        console.log(`[memory ${storage}] ${(size / MiB).toFixed(2)} MiB, forced GCs: ${describePass(held)}`);
        // Measured after the asserted pass, so allocator memory it leaves behind cannot flatter it.
        const natural = await passFile(t.client, alice, `${storage}-natural`, size, false);
        console.log(`[memory ${storage}] ${(size / MiB).toFixed(2)} MiB, no forced GC: ${describePass(natural)}`);

        for (const [half, growth] of [
          ['upload', held.upload],
          ['download', held.download],
        ] as const) {
          assert.ok(growth < MAX_GROWTH_MIB, `${half} grew resident memory by ${growth.toFixed(1)} MiB`);
        }
      },
    );
  });
}

/**
 * The blob service against real Postgres, once per storage backend (postgres, fs), called over gRPC
 * with the gateway's certificate and a caller's identity as the gateway calls it: uploads come back
 * byte-identical, resume where they were cut off, are refused (too large, overrun, hash mismatch) with
 * nothing left in storage, are stored once when identical, and go when deleted or expired.
 */
import { status } from '@grpc/grpc-js';
import { fileCiphertextSize } from '@qpq/crypto';
import { BlobServiceService as Rpc } from '@qpq/proto';
import { rejectsWithStatus, waitFor } from '@qpq/testnet';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { STORAGE_KINDS } from './config.js';
import { assertNothingMoreStored, blobUnderTest, newAccount } from './test-bed.js';
import { beginOf, chunksOf, sha256Of } from './test-client.js';

const MiB = 1024 * 1024;

/** Random bytes with their size and SHA-256, as a client's ciphertext would be. */
function randomFile(size: number) {
  const bytes = randomBytes(size);
  return { bytes, size, sha256: sha256Of(bytes), blobId: Buffer.from(sha256Of(bytes)).toString('hex') };
}

for (const storage of STORAGE_KINDS) {
  describe(`blob service with ${storage} storage`, () => {
    const t = blobUnderTest(storage);
    const alice = newAccount('alice');
    const bob = newAccount('bob');

    async function upload(who: typeof alice, file: ReturnType<typeof randomFile>, fields = {}) {
      return t.client.upload(who, beginOf(file, fields), chunksOf(file.bytes));
    }

    async function scrape(): Promise<string> {
      const res = await fetch(`http://${t.service.httpAddress}/metrics`, { signal: AbortSignal.timeout(5_000) });
      assert.equal(res.status, 200);
      return res.text();
    }

    function sample(metrics: string, series: string): number {
      const line = metrics.split('\n').find((l) => l.startsWith(`${series} `) || l.startsWith(`${series}{`));
      if (!line) return 0;
      // Labels are matched by the caller in `series`, e.g. qpq_blob_uploads_refused_total{reason="overrun"
      return Number(line.slice(line.lastIndexOf(' ') + 1));
    }

    function labelled(metrics: string, name: string, label: string): number {
      const line = metrics.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(label));
      return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
    }

    it('honours identity only from the gateway: a stranger is UNAUTHENTICATED', async () => {
      const file = randomFile(1000);
      await rejectsWithStatus(
        t.stranger.upload(alice, beginOf(file), chunksOf(file.bytes)),
        status.UNAUTHENTICATED,
        /logged-in device/,
      );
      await rejectsWithStatus(t.client.upload(undefined, beginOf(file), chunksOf(file.bytes)), status.UNAUTHENTICATED);
      await rejectsWithStatus(t.stranger.download(alice, file.blobId), status.UNAUTHENTICATED);
    });

    it('stores a few MiB and gives them back byte-identical, from the start and from an offset', async () => {
      const file = randomFile(4 * MiB + 12_345); // several parts and a ragged tail
      const before = Date.now();
      const { response } = await upload(alice, file);
      assert.equal(response.complete, true);
      assert.equal(response.blobId, file.blobId);
      assert.equal(response.stored, BigInt(file.size));
      // No expiry asked: the deployment's retention (30 days).
      const retention = Number(response.expiresAtMs) - before;
      assert.ok(retention >= t.cfg.maxRetentionMs && retention < t.cfg.maxRetentionMs + 60_000, `${retention}`);

      const whole = await t.client.downloadBytes(bob, file.blobId);
      assert.equal(whole.info.size, BigInt(file.size));
      assert.equal(whole.info.expiresAtMs, response.expiresAtMs);
      assert.ok(whole.bytes.equals(file.bytes), 'downloaded bytes are the uploaded bytes');

      const offset = 3 * MiB + 7;
      const rest = await t.client.downloadBytes(bob, file.blobId, BigInt(offset));
      assert.equal(rest.info.size, BigInt(file.size), 'info names the whole size');
      assert.ok(rest.bytes.equals(file.bytes.subarray(offset)), 'bytes from the offset');

      const atEnd = await t.client.download(bob, file.blobId, BigInt(file.size));
      assert.deepEqual([atEnd.bytes, atEnd.messages], [0, 1], 'from the end: the info alone');
      await rejectsWithStatus(
        t.client.download(bob, file.blobId, BigInt(file.size + 1)),
        status.OUT_OF_RANGE,
        /past the blob's/,
      );

      const counts = await t.stored();
      if (storage === 'postgres') assert.equal(counts.uploadParts, 0, 'upload parts moved to the blob');
      else assert.equal(counts.uploadFiles, 0, 'upload file renamed to the blob');
    });

    it('sends download chunks of at most QPQ_BLOB_CHUNK_BYTES', async () => {
      const file = randomFile(MiB + 1);
      await upload(alice, file);
      const sizes: number[] = [];
      await t.client.download(alice, file.blobId, 0n, (chunk) => void sizes.push(chunk.byteLength));
      assert.ok(Math.max(...sizes) <= t.cfg.chunkBytes);
      assert.equal(
        sizes.reduce((a, b) => a + b, 0),
        file.size,
      );
    });

    it('resumes an upload that ended halfway: only the rest is sent, and the blob is identical', async () => {
      const file = randomFile(3 * MiB + 999);
      const begin = beginOf(file);
      const half = Math.floor(file.size / 2);
      const first = await t.client.upload(alice, begin, chunksOf(file.bytes), { endAfterBytes: half });
      assert.deepEqual([first.response.complete, first.response.stored], [false, BigInt(half)]);

      const where = await t.gateway.call(Rpc.getUpload, { uploadId: begin.uploadId }, { identity: alice });
      assert.deepEqual(where, { stored: BigInt(half), size: BigInt(file.size), complete: false, blobId: '' });

      const second = await t.client.upload(
        alice,
        { ...begin, offset: where.stored },
        chunksOf(file.bytes.subarray(Number(where.stored))),
      );
      assert.equal(second.sentBytes, file.size - half, 'only the second half was sent again');
      assert.equal(second.response.complete, true);
      assert.equal(second.response.blobId, file.blobId);
      const after = await t.gateway.call(Rpc.getUpload, { uploadId: begin.uploadId }, { identity: alice });
      assert.deepEqual(after, {
        stored: BigInt(file.size),
        size: BigInt(file.size),
        complete: true,
        blobId: file.blobId,
      });
      assert.ok((await t.client.downloadBytes(alice, file.blobId)).bytes.equals(file.bytes));
    });

    it('resumes an upload whose call was cut off: what arrived is kept', async () => {
      const file = randomFile(3 * MiB);
      const begin = beginOf(file);
      await rejectsWithStatus(
        t.client.upload(alice, begin, chunksOf(file.bytes), { cancelAfterBytes: 2 * MiB }),
        status.CANCELLED,
      );
      // The service stores what it received when it sees the cancel: wait until the count settles.
      let last = -1n;
      const stored = await waitFor(
        'the stored count to settle',
        async () => {
          const { stored } = await t.gateway.call(Rpc.getUpload, { uploadId: begin.uploadId }, { identity: alice });
          const settled = stored === last && stored > 0n ? stored : undefined;
          last = stored;
          return settled;
        },
        10_000,
        300,
      );
      assert.ok(stored <= BigInt(2 * MiB), `stored ${stored}`);
      const rest = await t.client.upload(
        alice,
        { ...begin, offset: stored },
        chunksOf(file.bytes.subarray(Number(stored))),
      );
      assert.equal(rest.sentBytes, file.size - Number(stored));
      assert.equal(rest.response.blobId, file.blobId);
      assert.ok((await t.client.downloadBytes(alice, file.blobId)).bytes.equals(file.bytes));
    });

    /** Upload calls that ended CANCELLED, as the service counts them. */
    function cancelledUploads(metrics: string): number {
      const line = metrics
        .split('\n')
        .find(
          (l) =>
            l.startsWith('qpq_rpc_server_duration_seconds_count{') &&
            l.includes('code="CANCELLED"') &&
            l.includes('BlobService/Upload"'),
        );
      return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
    }

    it('survives a caller that cancels while the service is busy with its upload', async () => {
      const file = randomFile(MiB);
      const begin = beginOf(file);
      await t.client.upload(alice, begin, chunksOf(file.bytes), { endAfterBytes: 1000 });
      // The resume's begin waits for this lock, so the cancel arrives while the handler is not reading
      // and it asks for the next message only after the call is gone. A read then started and left to
      // reject unobserved would be an unhandled rejection: the end of a service process.
      let release!: () => void;
      let locked!: () => void;
      const isLocked = new Promise<void>((resolve) => (locked = resolve));
      const holding = t.db.transaction().execute(async (tx) => {
        await tx
          .selectFrom('uploads')
          .select('stored')
          .where('account_id', '=', alice.accountId)
          .where('upload_id', '=', begin.uploadId)
          .forUpdate()
          .execute();
        locked();
        await new Promise<void>((resolve) => (release = resolve));
      });
      const unhandled: unknown[] = [];
      const onUnhandled = (reason: unknown) => void unhandled.push(reason);
      process.on('unhandledRejection', onUnhandled);
      try {
        await Promise.race([isLocked, holding]);
        const cancelledBefore = cancelledUploads(await scrape());
        await rejectsWithStatus(
          t.client.upload(alice, { ...begin, offset: 1000n }, chunksOf(file.bytes.subarray(1000)), {
            cancelAfterBytes: 1000,
          }),
          status.CANCELLED,
        );
        // The cancel (an HTTP/2 reset) reaches the service at once on loopback.
        await new Promise((resolve) => setTimeout(resolve, 300));
        release();
        await holding;
        await waitFor(
          'the cancelled upload call to end',
          async () => cancelledUploads(await scrape()) > cancelledBefore,
          10_000,
          50,
        );
        // A rejection is reported a turn of the event loop after it happens.
        await new Promise((resolve) => setTimeout(resolve, 100));
      } finally {
        release?.();
        process.off('unhandledRejection', onUnhandled);
      }
      assert.deepEqual(unhandled, [], 'no promise of the cancelled call was left to reject unobserved');
      const where = await t.gateway.call(Rpc.getUpload, { uploadId: begin.uploadId }, { identity: alice });
      assert.equal(where.stored, 1000n, 'the cancelled resume stored nothing it did not read');
      const rest = await t.client.upload(alice, { ...begin, offset: 1000n }, chunksOf(file.bytes.subarray(1000)));
      assert.equal(rest.response.blobId, file.blobId);
    });

    it('ends an upload that sends nothing for QPQ_BLOB_IDLE_TIMEOUT, keeping what it delivered', async () => {
      const file = randomFile(MiB);
      const begin = beginOf(file);
      const started = Date.now();
      await rejectsWithStatus(
        t.client.upload(alice, begin, chunksOf(file.bytes), { stallAfterBytes: 300_000 }),
        status.DEADLINE_EXCEEDED,
        /no request message for 2000 ms/,
      );
      const waited = Date.now() - started;
      assert.ok(waited >= 1900 && waited < 10_000, `ended after ${waited} ms`);
      const where = await t.gateway.call(Rpc.getUpload, { uploadId: begin.uploadId }, { identity: alice });
      assert.equal(where.stored, 300_000n);
    });

    it('ends a download whose reader takes nothing for QPQ_BLOB_IDLE_TIMEOUT', async () => {
      // Larger than what gRPC buffers between the service and a reader that stopped (~10 MiB).
      const file = randomFile(24 * MiB);
      await upload(alice, file);
      let received = 0;
      await rejectsWithStatus(
        t.client.download(alice, file.blobId, 0n, async (chunk) => {
          if (received === 0) await new Promise((resolve) => setTimeout(resolve, 3_000));
          received += chunk.byteLength;
        }),
        status.DEADLINE_EXCEEDED,
        /the reader took nothing for 2000 ms/,
      );
      assert.ok(received < file.size, `received ${received} of ${file.size}`);
    });

    it('refuses a resume from the wrong offset, naming both numbers, and a resume of other bytes', async () => {
      const file = randomFile(MiB + 10);
      const begin = beginOf(file);
      await t.client.upload(alice, begin, chunksOf(file.bytes), { endAfterBytes: 300_000 });
      const metricsBefore = await scrape();
      await rejectsWithStatus(
        t.client.upload(alice, { ...begin, offset: 100n }, chunksOf(file.bytes.subarray(100))),
        status.FAILED_PRECONDITION,
        /has 300000 bytes stored, not 100: continue from offset 300000/,
      );
      assert.equal(
        labelled(await scrape(), 'qpq_blob_uploads_refused_total', 'reason="offset"'),
        labelled(metricsBefore, 'qpq_blob_uploads_refused_total', 'reason="offset"') + 1,
      );
      const other = randomFile(MiB + 10);
      await rejectsWithStatus(
        t.client.upload(alice, { ...begin, sha256: other.sha256, offset: 300_000n }, []),
        status.FAILED_PRECONDITION,
        /another size or SHA-256/,
      );
      await rejectsWithStatus(
        t.client.upload(alice, { ...begin, size: begin.size + 1n, offset: 300_000n }, []),
        status.FAILED_PRECONDITION,
        /another size or SHA-256/,
      );
      // Still resumable from where it was.
      const rest = await t.client.upload(alice, { ...begin, offset: 300_000n }, chunksOf(file.bytes.subarray(300_000)));
      assert.equal(rest.response.blobId, file.blobId);
    });

    it('keeps uploads per account: another account cannot see or continue one', async () => {
      const file = randomFile(500_000);
      const begin = beginOf(file);
      await t.client.upload(alice, begin, chunksOf(file.bytes), { endAfterBytes: 200_000 });
      await rejectsWithStatus(
        t.gateway.call(Rpc.getUpload, { uploadId: begin.uploadId }, { identity: bob }),
        status.NOT_FOUND,
      );
      await rejectsWithStatus(
        t.client.upload(bob, { ...begin, offset: 200_000n }, chunksOf(file.bytes.subarray(200_000))),
        status.NOT_FOUND,
        /no upload .* of yours to continue/,
      );
      const alices = await t.gateway.call(Rpc.getUpload, { uploadId: begin.uploadId }, { identity: alice });
      assert.equal(alices.stored, 200_000n, "alice's upload is untouched");
    });

    it('refuses a declared size over the limit at once, naming the limit, with nothing stored', async () => {
      const baseline = await t.stored();
      const limit = fileCiphertextSize(t.cfg.maxFileBytes);
      const file = randomFile(1000);
      const begin = beginOf({ size: limit + 1, sha256: file.sha256 });
      await rejectsWithStatus(
        t.client.upload(alice, begin, chunksOf(file.bytes)),
        status.RESOURCE_EXHAUSTED,
        /^file too large: the limit is 52,428,800 bytes \(50 MiB\)/,
      );
      assertNothingMoreStored(await t.stored(), baseline, 'after a too-large declaration');
      await rejectsWithStatus(
        t.gateway.call(Rpc.getUpload, { uploadId: begin.uploadId }, { identity: alice }),
        status.NOT_FOUND,
      );
      // Exactly the limit is allowed (the upload is begun; this call sends nothing).
      const atLimit = await t.client.upload(alice, beginOf({ size: limit, sha256: file.sha256 }), []);
      assert.deepEqual([atLimit.response.complete, atLimit.response.stored], [false, 0n]);
      assert.ok(
        labelled(await scrape(), 'qpq_blob_uploads_refused_total', 'reason="too_large"') >= 1,
        'counted as too_large',
      );
    });

    it('refuses bytes past the declared size and keeps nothing of the upload', async () => {
      const baseline = await t.stored();
      const file = randomFile(MiB + 1);
      // Declares 1 MiB (a whole part is stored before the extra byte arrives) and sends 1 MiB + 1.
      const begin = beginOf({ size: MiB, sha256: sha256Of(file.bytes.subarray(0, MiB)) });
      await rejectsWithStatus(
        t.client.upload(alice, begin, chunksOf(file.bytes)),
        status.RESOURCE_EXHAUSTED,
        'upload sent more than its declared 1,048,576 bytes; nothing of it was kept',
      );
      assertNothingMoreStored(await t.stored(), baseline, 'after an overrun');
      await rejectsWithStatus(
        t.gateway.call(Rpc.getUpload, { uploadId: begin.uploadId }, { identity: alice }),
        status.NOT_FOUND,
      );
      assert.equal(labelled(await scrape(), 'qpq_blob_uploads_refused_total', 'reason="overrun"'), 1);
    });

    it('refuses bytes that do not match their declared SHA-256 and keeps nothing (DATA_LOSS)', async () => {
      const baseline = await t.stored();
      const file = randomFile(2 * MiB + 5);
      const corrupted = Buffer.from(file.bytes);
      corrupted[MiB + 3]! ^= 0x01; // one flipped bit in the middle
      await rejectsWithStatus(
        t.client.upload(alice, beginOf(file), chunksOf(corrupted)),
        status.DATA_LOSS,
        /do not match their declared SHA-256/,
      );
      assertNothingMoreStored(await t.stored(), baseline, 'after a hash mismatch');
      await rejectsWithStatus(t.client.download(alice, file.blobId), status.NOT_FOUND);
      assert.equal(labelled(await scrape(), 'qpq_blob_uploads_refused_total', 'reason="hash_mismatch"'), 1);
    });

    it('refuses malformed requests and answers NOT_FOUND for unknown ids', async () => {
      const file = randomFile(100);
      const unknown = randomFile(10).blobId;
      await rejectsWithStatus(t.client.download(alice, 'not-a-hash'), status.INVALID_ARGUMENT, /64 lowercase hex/);
      await rejectsWithStatus(t.client.download(alice, file.blobId.toUpperCase()), status.INVALID_ARGUMENT);
      await rejectsWithStatus(t.client.download(alice, unknown), status.NOT_FOUND, /no blob/);
      await rejectsWithStatus(
        t.gateway.call(Rpc.deleteBlob, { blobId: unknown }, { identity: alice }),
        status.NOT_FOUND,
      );
      await rejectsWithStatus(
        t.gateway.call(Rpc.deleteBlob, { blobId: 'x'.repeat(64) }, { identity: alice }),
        status.INVALID_ARGUMENT,
      );
      await rejectsWithStatus(
        t.gateway.call(Rpc.getUpload, { uploadId: randomUUID() }, { identity: alice }),
        status.NOT_FOUND,
      );
      await rejectsWithStatus(
        t.gateway.call(Rpc.getUpload, { uploadId: '../../etc/passwd' }, { identity: alice }),
        status.INVALID_ARGUMENT,
      );
      await rejectsWithStatus(
        t.client.upload(alice, beginOf(file, { uploadId: 'a/b' }), chunksOf(file.bytes)),
        status.INVALID_ARGUMENT,
        /upload_id/,
      );
      await rejectsWithStatus(
        t.client.upload(alice, beginOf({ size: 100, sha256: file.sha256.subarray(0, 31) }), chunksOf(file.bytes)),
        status.INVALID_ARGUMENT,
        /32 bytes/,
      );
      await rejectsWithStatus(
        t.client.upload(alice, beginOf({ size: 15, sha256: file.sha256 }), []),
        status.INVALID_ARGUMENT,
        /at least 16 bytes/,
      );
      await rejectsWithStatus(
        t.client.upload(alice, beginOf(file, { offset: 5n }), chunksOf(file.bytes.subarray(5))),
        status.NOT_FOUND,
        /begin at offset 0/,
      );
    });

    it('stores identical uploads once: the second is complete at once and stores nothing new', async () => {
      const file = randomFile(3 * MiB);
      const first = await upload(alice, file);
      const baseline = await t.stored();
      const metricsBefore = await scrape();
      const second = await upload(bob, file);
      assert.equal(second.response.complete, true);
      assert.equal(second.response.blobId, file.blobId);
      const now = await t.stored();
      assert.deepEqual(
        { ...now, claims: baseline.claims, uploads: baseline.uploads },
        baseline,
        'no new blob, part or file: only a claim and an upload record',
      );
      assert.equal(now.claims, baseline.claims + 1, "bob's claim");
      assert.equal(now.uploads, baseline.uploads + 1, "bob's upload record");
      const metricsAfter = await scrape();
      assert.equal(
        sample(metricsAfter, 'qpq_blob_dedup_hits_total'),
        sample(metricsBefore, 'qpq_blob_dedup_hits_total') + 1,
      );
      assert.equal(
        sample(metricsAfter, 'qpq_blob_received_bytes_total'),
        sample(metricsBefore, 'qpq_blob_received_bytes_total'),
        'answered after begin: not one chunk was taken in',
      );
      // The same account again, with a longer expiry: its claim is extended, never shortened.
      const later = Date.now() + 40 * 24 * 3600_000;
      const again = await upload(alice, file, { expiresAtMs: BigInt(later) });
      assert.ok(again.response.expiresAtMs >= first.response.expiresAtMs);
      assert.ok((await t.client.downloadBytes(alice, file.blobId)).bytes.equals(file.bytes));
    });

    it('deletes a blob with its last claim: an uploader deletes only their own claim', async () => {
      const baseline = await t.stored();
      const file = randomFile(2 * MiB + 1);
      await upload(alice, file);
      await upload(bob, file);
      await t.gateway.call(Rpc.deleteBlob, { blobId: file.blobId }, { identity: alice });
      await rejectsWithStatus(
        t.gateway.call(Rpc.deleteBlob, { blobId: file.blobId }, { identity: alice }),
        status.NOT_FOUND,
        /no claim/,
      );
      assert.ok((await t.client.downloadBytes(alice, file.blobId)).bytes.equals(file.bytes), "bob's claim keeps it");
      await t.gateway.call(Rpc.deleteBlob, { blobId: file.blobId }, { identity: bob });
      await rejectsWithStatus(t.client.download(alice, file.blobId), status.NOT_FOUND);
      assertNothingMoreStored(await t.stored(), baseline, 'after both claims were deleted');
    });

    it('caps expiries at the retention and refuses one in the past', async () => {
      const file = randomFile(1000);
      await rejectsWithStatus(
        upload(alice, file, { expiresAtMs: BigInt(Date.now() - 1000) }),
        status.INVALID_ARGUMENT,
        /not in the future/,
      );
      const before = Date.now();
      const far = await upload(alice, file, { expiresAtMs: BigInt(before + 365 * 24 * 3600_000) });
      const retention = Number(far.response.expiresAtMs) - before;
      assert.ok(retention >= t.cfg.maxRetentionMs && retention < t.cfg.maxRetentionMs + 60_000, `${retention}`);
    });

    it('collects a blob once every claim expired, and an abandoned upload', async () => {
      await t.service.collector.collect(); // whatever earlier tests left to collect
      const baseline = await t.stored();
      const file = randomFile(MiB + 77);
      const shortly = BigInt(Date.now() + 60_000);
      const { response } = await upload(alice, file, { expiresAtMs: shortly });
      assert.equal(response.expiresAtMs, shortly);
      const abandoned = randomFile(MiB + 3);
      const abandonedBegin = beginOf(abandoned);
      await t.client.upload(bob, abandonedBegin, chunksOf(abandoned.bytes), { endAfterBytes: MiB });

      assert.deepEqual(await t.service.collector.collect(), { blobs: 0, uploads: 0 }, 'nothing is due yet');
      t.advanceClock(61_000);
      await rejectsWithStatus(t.client.download(alice, file.blobId), status.NOT_FOUND, /expired/);
      const collectedBefore = await scrape();
      assert.deepEqual(await t.service.collector.collect(), { blobs: 1, uploads: 0 });
      t.advanceClock(t.cfg.uploadTtlMs);
      // Bob's upload, and the unfinished ones earlier tests left (they too are a day old now).
      const late = await t.service.collector.collect();
      assert.equal(late.blobs, 0);
      assert.ok(late.uploads >= 1, `${late.uploads}`);
      await rejectsWithStatus(
        t.gateway.call(Rpc.getUpload, { uploadId: abandonedBegin.uploadId }, { identity: bob }),
        status.NOT_FOUND,
      );
      const metrics = await scrape();
      assert.equal(
        labelled(metrics, 'qpq_blob_collected_total', 'kind="blob"'),
        labelled(collectedBefore, 'qpq_blob_collected_total', 'kind="blob"') + 1,
      );
      assert.ok(labelled(metrics, 'qpq_blob_collected_total', 'kind="upload"') >= 1);
      // Every unfinished upload is gone with its bytes; the blobs of earlier tests remain (30 days).
      const now = await t.stored();
      assert.equal(now.uploadParts + now.uploadFiles, 0, 'no bytes of unfinished uploads remain');
      assert.deepEqual(
        [now.blobs, now.claims, now.blobParts, now.blobFiles],
        [baseline.blobs, baseline.claims, baseline.blobParts, baseline.blobFiles],
        'the expired blob is gone with its claim and bytes; the others stay',
      );
      await rejectsWithStatus(
        t.gateway.call(Rpc.deleteBlob, { blobId: file.blobId }, { identity: alice }),
        status.NOT_FOUND,
      );
    });

    it('reports bytes received, sent and stored on /metrics', async () => {
      const before = await scrape();
      const file = randomFile(MiB + 100);
      await upload(alice, file);
      await t.client.downloadBytes(alice, file.blobId);
      const after = await scrape();
      assert.equal(
        sample(after, 'qpq_blob_received_bytes_total') - sample(before, 'qpq_blob_received_bytes_total'),
        file.size,
      );
      assert.equal(sample(after, 'qpq_blob_sent_bytes_total') - sample(before, 'qpq_blob_sent_bytes_total'), file.size);
      assert.ok(sample(after, 'qpq_blob_uploads_completed_total') > sample(before, 'qpq_blob_uploads_completed_total'));
      const { total } = await t.db
        .selectFrom('blobs')
        .select((eb) => eb.fn.sum<string>('size').as('total'))
        .executeTakeFirstOrThrow();
      assert.equal(sample(after, 'qpq_blob_stored_bytes'), Number(total), 'the gauge is the bytes of complete blobs');
    });

    it('reports its Postgres pool on /metrics', async () => {
      const metrics = await scrape();
      assert.equal(sample(metrics, 'qpq_db_pool_max_connections'), 8);
      const idle = labelled(metrics, 'qpq_db_pool_connections', 'state="idle"');
      const busy = labelled(metrics, 'qpq_db_pool_connections', 'state="busy"');
      // At scrape time the stored-bytes gauge may be querying: busy or idle, a connection is open.
      assert.ok(idle + busy >= 1, `${idle} idle, ${busy} busy`);
      assert.match(metrics, /^qpq_db_pool_waiting_clients\{[^}]*\} 0$/m);
    });
  });
}

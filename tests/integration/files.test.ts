/**
 * Encrypted files on the whole system (every service its own process, real Postgres, NATS JetStream,
 * QUIC): a 50 MiB file goes from one account to another byte-identical while the gateway's and the blob
 * service's memory stays flat; one byte more is refused by the client naming the limit; an upload that
 * lies about its size is refused by the server and leaves nothing; a corrupted chunk is caught; an
 * upload cut off halfway resumes without the first half; the database holds only ciphertext.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AuthServiceService, BlobServiceService, SessionServiceService } from '@qpq/proto';
import type { QpqClient } from '@qpq/sdk';
import { defaultServiceCommand, metricValue, type ServiceName, type TestNetwork } from '@qpq/testnet';
import { RpcError, StatusCode } from '@qpq/wire';
import pg from 'pg';
import { call, connectByHand, registerByHand, startLoginByHand } from './by-hand.js';
import { search } from './plaintext-search.js';
import { bootNetwork, dataDirOf, jsonLines, marker, openClient, qpq } from './support.js';

const MiB = 1024 * 1024;
const LIMIT = 52_428_800;
const PASSWORD = 'files test password';
let net: TestNetwork;
let db: pg.Client;
let files: string;
const clients: QpqClient[] = [];
/** The text marker at the start of each file made: none may be found in what the server stores. */
const firstMarkers: string[] = [];

before(async () => {
  net = await bootNetwork({
    // Every GC of the gateway and the blob service a full one, so what they hold is measured often
    // (qpq_nodejs_live_memory_bytes): left alone, the blob service may pass a whole file without a major
    // GC, and the gateway does a handful, each read while the QUIC stack's garbage buffers await sweeping.
    serviceCommand: (pkg) => {
      const { command, args } = defaultServiceCommand(pkg);
      return { command, args: pkg === 'blob' || pkg === 'gateway' ? ['--gc-global', ...args] : args };
    },
  });
  db = new pg.Client({ connectionString: net.databaseUrl });
  await db.connect();
  files = join(net.dir, 'files');
  await mkdir(files, { recursive: true });
});
after(async () => {
  await Promise.allSettled(clients.map((c) => c.close(1_000)));
  await db?.end();
  await net?.destroy();
});

/** A file of `size` random bytes with a text marker at the start of every MiB; answers its SHA-256. */
async function makeFile(name: string, size: number): Promise<{ path: string; sha256: string }> {
  const blocks: Buffer[] = [];
  for (let at = 0; at < size; at += MiB) {
    const block = randomBytes(Math.min(MiB, size - at));
    const text = Buffer.from(marker('file-plaintext'));
    if (block.length >= text.length) {
      text.copy(block);
      if (at === 0) firstMarkers.push(text.toString());
    }
    blocks.push(block);
  }
  const data = Buffer.concat(blocks);
  const path = join(files, name);
  await writeFile(path, data);
  return { path, sha256: createHash('sha256').update(data).digest('hex') };
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The CLI; a 50 MiB transfer through this QUIC stack takes a minute or more on a loaded 2-core machine. */
const cli = (name: string, args: string[]) => qpq(net, dataDirOf(net, name), args, 0, 300_000);

/** A metric's value on a service's /metrics (undefined if it has no such series). */
const metricOf = (service: ServiceName, name: string, labels: Record<string, string> = {}) =>
  metricValue(net.addressOf(service).metrics, name, labels);

/**
 * How much more memory services hold while `work` runs, from their live memory after each major GC
 * (qpq_nodejs_live_memory_bytes: what a process holds, without the QUIC stack's garbage that its
 * resident size also carries), sampled every 100 ms. A single figure can be high by what was allocated
 * between the GC and its reading, or not yet swept, so the rise is the median of the figures of the
 * last two thirds of the transfer over the one before it began: a process holding the file would show
 * most of it there. The peak rise of resident memory is kept for the note.
 */
async function memoryDuring<T>(
  services: ServiceName[],
  work: () => Promise<T>,
): Promise<{ result: T; held: Record<string, HeldMemory> }> {
  const read = async (service: ServiceName) => ({
    live: (await metricOf(service, 'qpq_nodejs_live_memory_bytes')) ?? 0,
    gcs: (await metricOf(service, 'qpq_nodejs_gc_duration_seconds_count', { kind: 'major' })) ?? 0,
    rss: (await metricOf(service, 'qpq_process_resident_memory_bytes')) ?? 0,
  });
  const started = Date.now();
  const base = Object.fromEntries(await Promise.all(services.map(async (s) => [s, await read(s)] as const)));
  const last = structuredClone(base);
  const afterGc: Record<string, { at: number; live: number }[]> = Object.fromEntries(services.map((s) => [s, []]));
  const peakRss = Object.fromEntries(services.map((s) => [s, base[s]!.rss]));
  let running = true;
  const sampling = (async () => {
    while (running) {
      await new Promise((r) => setTimeout(r, 100));
      for (const s of services) {
        const now = await read(s);
        if (now.gcs > last[s]!.gcs) afterGc[s]!.push({ at: Date.now() - started, live: now.live });
        last[s] = now;
        peakRss[s] = Math.max(peakRss[s]!, now.rss);
      }
    }
  })();
  let result: T;
  try {
    result = await work();
  } finally {
    running = false;
    await sampling;
  }
  const elapsed = Date.now() - started;
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  const held = Object.fromEntries(
    services.map((s) => {
      const late = afterGc[s]!.filter((g) => g.at > elapsed / 3).map((g) => g.live);
      return [
        s,
        {
          liveMiB: late.length ? Math.round((median(late) - base[s]!.live) / MiB) : undefined,
          majorGcs: last[s]!.gcs - base[s]!.gcs,
          rssMiB: Math.round((peakRss[s]! - base[s]!.rss) / MiB),
        },
      ];
    }),
  );
  return { result, held };
}

interface HeldMemory {
  /** Undefined when the process made no major GC in the last two thirds: nothing measured. */
  liveMiB: number | undefined;
  majorGcs: number;
  rssMiB: number;
}

describe('encrypted files', { timeout: 600_000 }, () => {
  before(async () => {
    for (const name of ['alice', 'bob']) {
      const res = await cli(name, ['register', '-u', name, '-p', PASSWORD]);
      assert.equal(res.code, 0, res.stderr);
    }
    // A first message sets up the conversation, so the file below measures the transfer alone.
    assert.equal((await cli('alice', ['send', 'bob', 'a file follows'])).code, 0);
  });

  it('a 50 MiB file arrives byte-identical, with the gateway and blob service memory flat', async () => {
    const original = await makeFile('fifty.bin', LIMIT);
    const warmup = await makeFile('warmup.bin', 10 * MiB);
    const services: ServiceName[] = ['gateway-0', 'blob'];
    // Flat means the file is not held: live memory after a major GC rises by at most 24 MiB (a held
    // 50 MiB file would show as 50). A 10 MiB transfer first brings each process to its working size.
    const flat = (what: string, m: { held: Record<string, HeldMemory> }) => {
      for (const name of services) {
        const { liveMiB } = m.held[name]!;
        assert.ok(liveMiB !== undefined, `${name} made no major GC while 50 MiB ${what}: nothing was measured`);
        assert.ok(liveMiB <= 24, `${name} came to hold ${liveMiB} MiB more while 50 MiB ${what}`);
      }
    };
    const report = (m: { held: Record<string, HeldMemory> }) => JSON.stringify(m.held);
    const upSmall = await memoryDuring(services, () => cli('alice', ['--json', 'send-file', 'bob', warmup.path]));
    assert.equal(upSmall.result.code, 0, upSmall.result.stderr + upSmall.result.stdout);
    const started = Date.now();
    const upLarge = await memoryDuring(services, () => cli('alice', ['--json', 'send-file', 'bob', original.path]));
    const seconds = (Date.now() - started) / 1000;
    assert.equal(upLarge.result.code, 0, upLarge.result.stderr + upLarge.result.stdout);
    console.log(
      `upload: 50 MiB in ${seconds.toFixed(1)} s (${(LIMIT / MiB / seconds).toFixed(1)} MiB/s); 10 MiB: ${report(upSmall)}; 50 MiB: ${report(upLarge)}`,
    );
    flat('went up', upLarge);

    const recv = await cli('bob', ['--json', 'recv']);
    assert.equal(recv.code, 0, recv.stderr);
    const fileOf = (name: string) => {
      const message = jsonLines(recv.stdout).find((m) => (m.file as { name?: string } | undefined)?.name === name);
      assert.ok(message, recv.stdout);
      return message.file as { id: string; name: string; size: number };
    };
    const [small, large] = [fileOf('warmup.bin'), fileOf('fifty.bin')];
    assert.equal(large.size, LIMIT);
    const out = join(files, 'fifty.received');
    const downSmall = await memoryDuring(services, () =>
      cli('bob', ['download', small.id, '--out', join(files, 'warmup.received')]),
    );
    assert.equal(downSmall.result.code, 0, downSmall.result.stderr);
    const downLarge = await memoryDuring(services, () => cli('bob', ['download', large.id, '--out', out]));
    assert.equal(downLarge.result.code, 0, downLarge.result.stderr);
    console.log(`download: 10 MiB: ${report(downSmall)}; 50 MiB: ${report(downLarge)}`);
    flat('went down', downLarge);
    assert.equal(await sha256Of(out), original.sha256, 'byte-identical');
    assert.equal(await sha256Of(join(files, 'warmup.received')), warmup.sha256);
  });

  it('a file one byte over the limit is refused by the client, naming the limit, before any upload', async () => {
    const big = await makeFile('too-big.bin', LIMIT + 1);
    const uploadsBefore = await db.query('select count(*)::int as n from blob.uploads');
    const res = await cli('alice', ['send-file', 'bob', big.path]);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /too large/);
    assert.match(res.stderr, /52,428,800 bytes \(50 MiB\)/);
    assert.equal(res.stderr.trim().split('\n').length, 1, 'one line');
    const uploadsAfter = await db.query('select count(*)::int as n from blob.uploads');
    assert.equal(uploadsAfter.rows[0].n, uploadsBefore.rows[0].n, 'nothing was uploaded');
  });

  it('an upload that sends more than it declared is refused, and none of its bytes remain', async () => {
    const conn = await connectByHand(net);
    try {
      await registerByHand(conn, 'liar', PASSWORD);
      const session = await call(conn, AuthServiceService.finishLogin, {
        ...(await startLoginByHand(conn, 'liar', PASSWORD)),
        device: { $case: 'newDevice', value: { identityKey: randomBytes(32), name: 'by hand' } },
      });
      await call(conn, SessionServiceService.attach, { sessionToken: session.sessionToken });
      const uploadId = randomUUID();
      const declared = MiB;
      async function* lies() {
        for (let i = 0; i < 4; i++) yield randomBytes(MiB / 2); // 2 MiB, twice what was declared
      }
      await assert.rejects(
        conn.uploadFile(
          { uploadId, size: BigInt(declared), sha256: randomBytes(32), expiresAtMs: 0n, offset: 0n },
          lies(),
        ),
        (err: unknown) => {
          assert.ok(err instanceof RpcError, String(err));
          assert.ok(
            ([StatusCode.RESOURCE_EXHAUSTED, StatusCode.INVALID_ARGUMENT] as number[]).includes(err.code),
            err.message,
          );
          assert.match(err.message, /more than/);
          return true;
        },
      );
      const left = await db.query(
        `select (select count(*)::int from blob.uploads where upload_id = $1) as uploads,
                (select count(*)::int from blob.upload_parts p join blob.uploads u using (storage_key)
                  where u.upload_id = $1) as parts`,
        [uploadId],
      );
      assert.deepEqual(left.rows[0], { uploads: 0, parts: 0 });
      await assert.rejects(call(conn, BlobServiceService.getUpload, { uploadId }), (err: unknown) => {
        assert.ok(err instanceof RpcError);
        assert.equal(err.code, StatusCode.NOT_FOUND);
        return true;
      });
    } finally {
      await conn.close();
    }
  });

  it('a corrupted chunk is detected on download, and nothing is written', async () => {
    const small = await makeFile('small.bin', 300 * 1024);
    const sent = await cli('alice', ['--json', 'send-file', 'bob', small.path]);
    assert.equal(sent.code, 0, sent.stderr);
    const blobId = (jsonLines(sent.stdout)[0]!.file as { id: string }).id;
    // Flip one byte of the stored ciphertext, inside the third 64 KiB chunk.
    const at = 2 * (64 * 1024 + 16) + 100;
    const part = await db.query<{ start: string; bytes: Buffer }>(
      'select start, bytes from blob.blob_parts where blob_id = $1 and start <= $2 order by start desc limit 1',
      [blobId, at],
    );
    const row = part.rows[0]!;
    const tampered = Buffer.from(row.bytes);
    const offset = at - Number(row.start);
    tampered[offset] = tampered[offset]! ^ 0x01;
    await db.query('update blob.blob_parts set bytes = $1 where blob_id = $2 and start = $3', [
      tampered,
      blobId,
      row.start,
    ]);
    assert.equal((await cli('bob', ['recv'])).code, 0);
    const out = join(files, 'small.received');
    const res = await cli('bob', ['download', blobId, '--out', out]);
    assert.equal(res.code, 1, res.stdout);
    assert.match(res.stderr, /file chunk 2 failed authentication/);
    await assert.rejects(stat(out), 'no file written');
    await assert.rejects(stat(`${out}.part`), 'no partial file left');
  });

  it('an upload cut off halfway resumes without sending the first half again', async () => {
    const alice = await openClient(net, 'alice-sdk');
    clients.push(alice);
    await alice.register('alice2', PASSWORD);
    const original = await makeFile('resume.bin', 20 * MiB);
    const receivedBefore = (await metricOf('blob', 'qpq_blob_received_bytes_total')) ?? 0;
    let cut = false;
    let resumedFrom: number | undefined;
    let lastDone = 0;
    const sending = alice.sendFile('bob', original.path, {
      onProgress: (done, total) => {
        if (cut && resumedFrom === undefined && done < lastDone) resumedFrom = done;
        lastDone = done;
        if (!cut && done >= total / 2) {
          cut = true;
          void net.killService('gateway-0').then(() => net.startService('gateway-0'));
        }
      },
    });
    const sent = await sending;
    assert.ok(cut, 'the connection was cut');
    // Progress counts bytes of the file; the blob service counts ciphertext (16 bytes more per 64 KiB).
    const size = 20 * MiB;
    const total = size + 16 * 320;
    // What was in flight when the gateway died is sent again: the client's queued frames, the QUIC
    // stream window (2 MiB), the HTTP/2 window, the blob service's part not yet stored — up to ~6 MiB
    // at the edge's speed (4.5 MiB measured). Everything stored before is not sent again.
    const inFlight = 6 * MiB;
    assert.ok(
      resumedFrom !== undefined && resumedFrom >= size / 2 - inFlight,
      `resumed from ${resumedFrom} of ${size}`,
    );
    const received = ((await metricOf('blob', 'qpq_blob_received_bytes_total')) ?? 0) - receivedBefore;
    console.log(
      `resume: cut at 50 %, resumed from ${resumedFrom} of ${size}; blob service received ${received} of ${total}`,
    );
    assert.ok(received < total * 1.25, `the blob service received ${received} bytes for a ${total}-byte upload`);

    const bob = await cli('bob', ['--json', 'recv']);
    const file = jsonLines(bob.stdout).find((m) => (m.file as { id?: string } | undefined)?.id === sent.file.id);
    assert.ok(file, bob.stdout);
    const out = join(files, 'resume.received');
    const down = await cli('bob', ['download', sent.file.id, '--out', out]);
    assert.equal(down.code, 0, down.stderr);
    assert.equal(await sha256Of(out), original.sha256);
  });

  it('the stored data holds only ciphertext: no plaintext of any file anywhere', async () => {
    for (const name of net.serviceNames()) await net.stopService(name);
    // The first marker of each file, in every encoding (searching ~300 MiB once per form).
    const probes = [...new Set(firstMarkers)];
    assert.ok(probes.length >= 4, `${probes.length} files were sent`);
    const found = await search([join(net.dir, 'postgres'), join(net.dir, 'nats'), join(net.dir, 'logs')], probes);
    assert.deepEqual(Object.fromEntries(found), {});
    // The control: the same search finds a file's plaintext where it is (the sender's copy).
    const control = await search([files], probes.slice(0, 1));
    assert.equal(control.size, 1);
  });
});

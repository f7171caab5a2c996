import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { GrpcCode } from './errors.js';
import { Outbox, OutboxRejectedError, addToOutbox, type EnqueueFn, type EnqueueOutcome } from './outbox.js';
import { LocalStore } from './store.js';
import type { OutboxEntry } from './store-document.js';

// The delivery service is a separate process; here a scripted stand-in plays the server's answers so
// the client's rules (order, retry with the same id, what leaves the outbox) can be checked one by one.
// tests/integration drives the same code against the real service.

const root = mkdtempSync(join(tmpdir(), 'qpq-outbox-test-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const FAST = { attempts: 4, baseDelayMs: 1, maxDelayMs: 2 };
const rpcError = (code: number, message = 'x') => Object.assign(new Error(message), { code });

function entry(id: string, kind: OutboxEntry['kind'] = 'application', groupId = 'aa'): OutboxEntry {
  return {
    messageId: id,
    kind,
    conversation: 'bob@example.org',
    groupId,
    recipientDeviceIds: ['d1'],
    payload: Buffer.from(`payload ${id}`).toString('base64'),
    createdAtMs: 0,
    attempts: 0,
  };
}

async function storeWith(...entries: OutboxEntry[]): Promise<LocalStore> {
  const store = await LocalStore.open(join(root, `d${n++}`), { env: {} });
  await store.update((doc) => {
    doc.groups.aa = { conversation: 'bob@example.org', state: '', createdAtMs: 0 };
    doc.conversations['bob@example.org'] = {
      kind: 'dm',
      peer: 'bob@example.org',
      sendGroupId: 'aa',
      groupIds: ['aa'],
      history: entries
        .filter((e) => e.kind === 'application')
        .map((e) => ({
          id: e.messageId,
          direction: 'out' as const,
          from: 'a@example.org',
          text: 't',
          sentAtMs: 0,
          storedAtMs: 0,
        })),
    };
    addToOutbox(doc, ...entries);
  });
  return store;
}

/** A server that stores each message id once and answers a repeat as a duplicate. */
function server(script: (call: number, e: OutboxEntry) => void = () => undefined) {
  const stored = new Map<string, string>();
  const calls: string[] = [];
  const enqueue: EnqueueFn = async (e) => {
    calls.push(e.messageId);
    script(calls.length, e);
    const duplicate = stored.has(e.messageId);
    if (!duplicate) stored.set(e.messageId, e.payload);
    return {
      duplicate,
      recipients: [{ deviceId: 'd1', seq: BigInt(stored.size) }],
      acceptedAtMs: 1,
    } satisfies EnqueueOutcome;
  };
  return { enqueue, calls, stored };
}

describe('Outbox', () => {
  it('retries an unavailable server with the same message id, and the server stores it once', async () => {
    const store = await storeWith(entry('m1'));
    const srv = server((call) => {
      if (call === 1) throw rpcError(GrpcCode.UNAVAILABLE);
      if (call === 2) throw rpcError(GrpcCode.DEADLINE_EXCEEDED);
    });
    const result = await new Outbox(store, srv.enqueue, FAST).flush();
    assert.deepEqual(srv.calls, ['m1', 'm1', 'm1']);
    assert.equal(srv.stored.size, 1);
    assert.equal(result.sent.length, 1);
    const doc = await store.read();
    assert.equal(doc.outbox.length, 0);
    assert.equal(doc.conversations['bob@example.org']?.history[0]?.delivered, true);
  });

  it('keeps an entry queued when the server stays unreachable, and the next flush sends it with the same id', async () => {
    const store = await storeWith(entry('m1'), entry('m2'));
    let down = true;
    const srv = server(() => {
      if (down) throw rpcError(GrpcCode.UNAVAILABLE);
    });
    await assert.rejects(new Outbox(store, srv.enqueue, FAST).flush(), { code: GrpcCode.UNAVAILABLE });
    assert.deepEqual(
      (await store.read()).outbox.map((e) => e.messageId),
      ['m1', 'm2'],
    );
    assert.deepEqual(srv.calls, ['m1', 'm1', 'm1', 'm1'], 'm2 is not sent before m1 went through');
    down = false;
    // A new process (new Outbox, re-read store) picks up where the last one stopped.
    const again = await LocalStore.open(store.dataDir, { env: {} });
    await new Outbox(again, srv.enqueue, FAST).flush();
    assert.deepEqual(srv.calls.slice(4), ['m1', 'm2']);
    assert.equal((await again.read()).outbox.length, 0);
  });

  it('treats a duplicate answer (a crash after the server stored it) as sent', async () => {
    const store = await storeWith(entry('m1'));
    const srv = server();
    srv.stored.set('m1', 'earlier attempt');
    const result = await new Outbox(store, srv.enqueue, FAST).flush();
    assert.equal(result.sent[0]?.outcome.duplicate, true);
    assert.equal((await store.read()).outbox.length, 0);
  });

  it('drops a message the server refuses for good, reports it, and still sends the rest', async () => {
    const store = await storeWith(entry('m1'), entry('m2'));
    const srv = server((_, e) => {
      if (e.messageId === 'm1') throw rpcError(GrpcCode.INVALID_ARGUMENT, 'payload is larger than 65536 bytes');
    });
    await assert.rejects(new Outbox(store, srv.enqueue, FAST).flush(), (err: unknown) => {
      assert.ok(err instanceof OutboxRejectedError);
      assert.equal(err.message, 'payload is larger than 65536 bytes');
      return true;
    });
    assert.deepEqual(srv.calls, ['m1', 'm2'], 'a refusal is not retried');
    assert.equal((await store.read()).outbox.length, 0);
    assert.deepEqual([...srv.stored.keys()], ['m2']);
  });

  it('keeps entries queued on an expired session or a server failure', async () => {
    for (const code of [GrpcCode.UNAUTHENTICATED, GrpcCode.INTERNAL]) {
      const store = await storeWith(entry('m1'));
      const srv = server(() => {
        throw rpcError(code);
      });
      await assert.rejects(new Outbox(store, srv.enqueue, FAST).flush(), { code });
      assert.equal(srv.calls.length, 1, `code ${code} is not retried in a loop`);
      assert.equal((await store.read()).outbox.length, 1, `code ${code} keeps the entry`);
    }
  });

  it('retries a rate limit with the same id, and keeps the entry queued while it lasts', async () => {
    const store = await storeWith(entry('m1'), entry('m2'));
    let limited = 2;
    const srv = server(() => {
      if (limited-- > 0)
        throw rpcError(GrpcCode.RESOURCE_EXHAUSTED, 'too many requests in flight on this connection (at most 64)');
    });
    await new Outbox(store, srv.enqueue, FAST).flush();
    assert.deepEqual(srv.calls, ['m1', 'm1', 'm1', 'm2']);
    assert.equal((await store.read()).outbox.length, 0);

    const stuck = await storeWith(entry('m1'));
    const always = server(() => {
      throw rpcError(GrpcCode.RESOURCE_EXHAUSTED, 'too many KeyPackage claims; try again in 3 s');
    });
    await assert.rejects(new Outbox(stuck, always.enqueue, FAST).flush(), { code: GrpcCode.RESOURCE_EXHAUSTED });
    assert.equal(always.calls.length, FAST.attempts);
    assert.equal((await stuck.read()).outbox.length, 1, 'a rate limit keeps the entry');
  });

  it('drops a message refused for its size, its recipients or permission, and sends the ones behind it', async () => {
    const refusals: [number, string][] = [
      [GrpcCode.RESOURCE_EXHAUSTED, 'payload of 300000 bytes is larger than the limit of 262144 bytes'],
      [GrpcCode.RESOURCE_EXHAUSTED, '1001 recipient devices is more than the limit of 1000 per message'],
      [GrpcCode.PERMISSION_DENIED, 'not allowed'],
      [GrpcCode.UNIMPLEMENTED, 'unknown method'],
      [GrpcCode.INVALID_ARGUMENT, 'bad recipient'],
    ];
    for (const [code, message] of refusals) {
      const store = await storeWith(entry('m1'), entry('m2'), entry('m3'));
      const srv = server((_, e) => {
        if (e.messageId === 'm1') throw rpcError(code, message);
      });
      await assert.rejects(new Outbox(store, srv.enqueue, FAST).flush(), (err: unknown) => {
        assert.ok(err instanceof OutboxRejectedError, String(err));
        assert.equal(err.message, message);
        assert.equal(err.code, code);
        return true;
      });
      assert.deepEqual(srv.calls, ['m1', 'm2', 'm3'], `code ${code}: refused once, the rest still go out`);
      const doc = await store.read();
      assert.equal(doc.outbox.length, 0, `code ${code}: nothing stays queued`);
      const history = doc.conversations['bob@example.org']!.history;
      assert.deepEqual(
        history.map((h) => [h.id, h.delivered ?? false]),
        [
          ['m1', false],
          ['m2', true],
          ['m3', true],
        ],
      );
    }
  });

  it('forgets a group whose Welcome was refused, with what was queued for it', async () => {
    const store = await storeWith(entry('w1', 'welcome'), entry('m1'));
    const srv = server((_, e) => {
      if (e.kind === 'welcome') throw rpcError(GrpcCode.INVALID_ARGUMENT);
    });
    await assert.rejects(new Outbox(store, srv.enqueue, FAST).flush(), OutboxRejectedError);
    const doc = await store.read();
    assert.deepEqual(srv.calls, ['w1']);
    assert.equal(doc.outbox.length, 0);
    assert.equal(doc.groups.aa, undefined);
    assert.equal(doc.conversations['bob@example.org']?.sendGroupId, '', 'the next send sets up a new group');
  });

  it('sends once when flushes overlap', async () => {
    const store = await storeWith(entry('m1'), entry('m2'));
    const srv = server();
    const outbox = new Outbox(store, srv.enqueue, FAST);
    await Promise.all([outbox.flush(), outbox.flush(), outbox.flush()]);
    assert.deepEqual(srv.calls, ['m1', 'm2']);
  });

  it('queues an id once', async () => {
    const store = await storeWith(entry('m1'));
    await store.update((doc) => addToOutbox(doc, entry('m1'), entry('m2')));
    assert.deepEqual(
      (await store.read()).outbox.map((e) => e.messageId),
      ['m1', 'm2'],
    );
  });
});

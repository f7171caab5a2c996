import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { exportHistory, HISTORY_CHUNK_BYTES, importHistory } from './history-transfer.js';
import { emptyDocument, type ConversationRecord } from './store-document.js';

const conv = (history: ConversationRecord['history'] = []): ConversationRecord => ({
  kind: 'dm',
  peer: 'bob@example.org',
  sendGroupId: 'g',
  groupIds: ['g'],
  history,
});

describe('history hand-over', () => {
  it('splits a long history into chunks and joins them in any order, skipping what is held', () => {
    const source = conv(
      Array.from({ length: 400 }, (_, i) => ({
        id: `m${String(i).padStart(4, '0')}`,
        direction: i % 2 ? ('out' as const) : ('in' as const),
        from: i % 2 ? 'alice@example.org' : 'bob@example.org',
        text: `${i} `.repeat(200),
        sentAtMs: 1_000 + i,
        storedAtMs: 0,
      })),
    );
    const chunks = exportHistory(source, 't1');
    assert.ok(chunks.length > 1, 'more than one chunk');
    assert.ok(chunks.every((c) => c.data.length <= HISTORY_CHUNK_BYTES));
    const doc = emptyDocument();
    const self: ConversationRecord = { kind: 'self', peer: '~self', sendGroupId: 's', groupIds: ['s'], history: [] };
    const target = conv([
      { id: 'm0001', direction: 'out', from: 'alice@example.org', text: 'kept', sentAtMs: 1_001, storedAtMs: 0 },
    ]);
    doc.conversations[target.peer] = target;
    const shuffled = [...chunks].reverse();
    const merged = shuffled.map((c) => importHistory(doc, self, c, 'alice@example.org'));
    assert.deepEqual(
      merged.slice(0, -1),
      merged.slice(0, -1).map(() => 0),
      'nothing before the last part',
    );
    assert.equal(merged.at(-1), 399);
    assert.equal(target.history.length, 400);
    assert.equal(target.history[1]?.text, 'kept', 'what the device held stays');
    assert.deepEqual(
      target.history.map((h) => h.id),
      source.history.map((h) => h.id),
      'in sent order',
    );
    assert.equal(target.history[3]?.direction, 'out');
    assert.equal(self.pendingHistory, undefined);
  });

  it('files a conversation this device is not in yet, and never into the self group', () => {
    const doc = emptyDocument();
    const self: ConversationRecord = { kind: 'self', peer: '~self', sendGroupId: 's', groupIds: ['s'], history: [] };
    const group: ConversationRecord = {
      kind: 'group',
      peer: 'ab'.repeat(32),
      settings: { name: 'team', disappearAfterMs: 0 },
      sendGroupId: 'g',
      groupIds: ['g'],
      history: [{ id: 'x', direction: 'in', from: 'bob@example.org', text: 'hi', sentAtMs: 5, storedAtMs: 5 }],
    };
    for (const c of exportHistory(group, 't')) importHistory(doc, self, c, 'alice@example.org');
    const filed = doc.conversations[group.peer];
    assert.equal(filed?.kind, 'group');
    assert.equal(filed?.settings?.name, 'team');
    assert.deepEqual(filed?.groupIds, [], 'no group until its Welcome arrives');
    assert.deepEqual(
      filed?.history.map((h) => h.text),
      ['hi'],
    );
    const forged = { ...group, peer: '~self' };
    for (const c of exportHistory(forged, 'u')) importHistory(doc, self, c, 'alice@example.org');
    assert.equal(self.history.length, 0);
  });

  it('ignores malformed parts', () => {
    const doc = emptyDocument();
    const self = conv();
    const bad = { transferId: 'x', index: 0, count: 1, data: new Uint8Array([1, 2]) };
    assert.equal(importHistory(doc, self, bad, 'a@b'), 0);
    assert.equal(importHistory(doc, self, { transferId: 'x', index: 5, count: 1, data: new Uint8Array() }, 'a@b'), 0);
    assert.deepEqual(Object.keys(doc.conversations), []);
  });
});

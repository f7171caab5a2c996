import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AppContent } from '@qpq/proto';
import { applyContent } from './app-content.js';
import { purgeExpired, takeUnshown } from './conversations.js';
import { emptyDocument, type ConversationRecord, type GroupRecord } from './store-document.js';

const ALICE = 'alice@example.org';
const BOB = 'bob@example.org';
const CAROL = 'carol@example.org';

function group(): { conv: ConversationRecord; group: GroupRecord } {
  return {
    conv: {
      kind: 'group',
      peer: 'ab12',
      settings: { name: 'team', disappearAfterMs: 0 },
      sendGroupId: 'ab12',
      groupIds: ['ab12'],
      history: [],
    },
    group: { conversation: 'ab12', state: '', createdAtMs: 0 },
  };
}

let seq = 0;
function say(conv: ConversationRecord, g: GroupRecord, from: string, body: AppContent['body'], id = `id${++seq}`) {
  return applyContent(conv, g, { id, sentAtMs: 1_000n + BigInt(seq), body }, { from, own: ALICE, seq, now: 5_000 });
}

describe('applyContent', () => {
  it('stores a text once, as incoming or as this account’s own from another device', () => {
    const { conv, group: g } = group();
    const first = say(conv, g, BOB, { $case: 'text', value: { text: 'hi', replyTo: '' } }, 'm1');
    assert.equal(first.message?.text, 'hi');
    assert.equal(first.message?.group, 'team');
    assert.equal(say(conv, g, BOB, { $case: 'text', value: { text: 'hi', replyTo: '' } }, 'm1').message, undefined);
    const own = say(conv, g, ALICE, { $case: 'text', value: { text: 'mine', replyTo: 'm1' } }, 'm2');
    assert.equal(own.message?.replyTo, 'm1');
    assert.deepEqual(
      conv.history.map((h) => [h.id, h.direction]),
      [
        ['m1', 'in'],
        ['m2', 'out'],
      ],
    );
  });

  it('lets only the author edit or delete a message', () => {
    const { conv, group: g } = group();
    say(conv, g, BOB, { $case: 'text', value: { text: 'original', replyTo: '' } }, 'm1');
    assert.deepEqual(say(conv, g, CAROL, { $case: 'edit', value: { targetId: 'm1', text: 'forged' } }).events, []);
    assert.equal(conv.history[0]?.text, 'original');
    say(conv, g, BOB, { $case: 'edit', value: { targetId: 'm1', text: 'fixed' } });
    assert.equal(conv.history[0]?.text, 'fixed');
    assert.equal(conv.history[0]?.edited, true);
    assert.deepEqual(say(conv, g, CAROL, { $case: 'delete', value: { targetId: 'm1' } }).events, []);
    say(conv, g, BOB, { $case: 'delete', value: { targetId: 'm1' } });
    assert.equal(conv.history[0]?.deleted, true);
    assert.equal(conv.history[0]?.text, '');
  });

  it('counts reactions per emoji and person, and withdraws them', () => {
    const { conv, group: g } = group();
    say(conv, g, BOB, { $case: 'text', value: { text: 'x', replyTo: '' } }, 'm1');
    say(conv, g, CAROL, { $case: 'reaction', value: { targetId: 'm1', emoji: '👍', remove: false } });
    say(conv, g, ALICE, { $case: 'reaction', value: { targetId: 'm1', emoji: '👍', remove: false } });
    say(conv, g, CAROL, { $case: 'reaction', value: { targetId: 'm1', emoji: '👍', remove: false } });
    assert.deepEqual(conv.history[0]?.reactions, { '👍': [ALICE, CAROL] });
    say(conv, g, CAROL, { $case: 'reaction', value: { targetId: 'm1', emoji: '👍', remove: true } });
    assert.deepEqual(conv.history[0]?.reactions, { '👍': [ALICE] });
  });

  it('records read receipts on this account’s messages only', () => {
    const { conv, group: g } = group();
    say(conv, g, ALICE, { $case: 'text', value: { text: 'mine', replyTo: '' } }, 'm1');
    say(conv, g, BOB, { $case: 'text', value: { text: 'theirs', replyTo: '' } }, 'm2');
    const read = say(conv, g, BOB, { $case: 'receipt', value: { kind: 1, messageIds: ['m1', 'm2'] } });
    assert.deepEqual(read.events, [{ kind: 'read', conversation: 'ab12', from: BOB, messageIds: ['m1'] }]);
    assert.deepEqual(conv.history[0]?.readBy, [BOB]);
    assert.equal(conv.history[1]?.readBy, undefined);
  });

  it('a leave by another account queues its removal', () => {
    const { conv, group: g } = group();
    say(conv, g, BOB, { $case: 'leave', value: {} });
    assert.deepEqual(g.pendingRemovals, [BOB]);
  });

  it('takes a history hand-over only from this account, only in its own devices’ group', () => {
    const doc = emptyDocument();
    const self: ConversationRecord = { kind: 'self', peer: '~self', sendGroupId: 's', groupIds: ['s'], history: [] };
    const selfGroup: GroupRecord = { conversation: '~self', state: '', createdAtMs: 0 };
    const json = {
      format: 'qpq-history-v1',
      conversation: { id: BOB, kind: 'dm', name: '', disappearAfterMs: 0 },
      entries: [{ id: 'old', from: BOB, text: 'old', sentAtMs: 1 }],
    };
    const chunk = { transferId: 't', index: 0, count: 1, data: new Uint8Array(Buffer.from(JSON.stringify(json))) };
    const handOver = (conv: ConversationRecord, g: GroupRecord, from: string) =>
      applyContent(
        conv,
        g,
        { id: `h${++seq}`, sentAtMs: 1n, body: { $case: 'history', value: chunk } },
        { doc, from, own: ALICE, seq, now: 5_000 },
      );
    const filed = () => doc.conversations[BOB];
    handOver(self, selfGroup, BOB);
    assert.equal(filed(), undefined, 'not from another account');
    const { conv, group: g } = group();
    handOver(conv, g, ALICE);
    assert.equal(filed(), undefined, 'not in a conversation group');
    handOver(self, selfGroup, ALICE);
    assert.deepEqual(
      filed()?.history.map((h) => [h.id, h.shown]),
      [['old', true]],
    );
  });

  it('messages under a disappearing timer expire from the store', () => {
    const { conv, group: g } = group();
    conv.settings = { name: 'team', disappearAfterMs: 1_000 };
    say(conv, g, BOB, { $case: 'text', value: { text: 'brief', replyTo: '' } }, 'm1');
    const doc = emptyDocument();
    doc.conversations[conv.peer] = conv;
    assert.equal(takeUnshown(doc).length, 1);
    assert.equal(purgeExpired(doc, conv.history[0]!.expiresAtMs! - 1), 0);
    assert.equal(purgeExpired(doc, conv.history[0]!.expiresAtMs!), 1);
    assert.equal(conv.history.length, 0);
  });
});

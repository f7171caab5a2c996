import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import type { ConversationEvent, ConversationSummary, HistoryItem, ReceivedMessage } from '@qpq/sdk';
import {
  clock,
  conversationJson,
  conversationLine,
  deviceLine,
  eventJson,
  eventText,
  fileSize,
  historyItemJson,
  historyText,
  memberLine,
  messageJson,
  messageText,
  printMessages,
  safetyNumberText,
  savedFileText,
  sentFileText,
  type Io,
} from './output.js';

// Local time, as the CLI shows it.
const NOW = new Date(2026, 10, 25, 18, 0);
const AT = new Date(2026, 10, 25, 12, 3);
const GROUP_ID = 'a1b2c3d4e5f60718';

const dm: ReceivedMessage = { id: 'm1', from: 'alice@x', text: 'hi', conversation: 'alice@x', sentAt: AT, seq: 4 };
const inGroup: ReceivedMessage = {
  id: 'm2',
  from: 'alice@x',
  text: 'hello team',
  conversation: GROUP_ID,
  group: 'team',
  sentAt: AT,
  seq: 5,
};
const team = { kind: 'group', name: 'team' } as const;

function item(index: number, over: Partial<HistoryItem> = {}): HistoryItem {
  return {
    id: `h${index}`,
    from: 'bob@x',
    text: `message ${index}`,
    conversation: GROUP_ID,
    group: 'team',
    sentAt: AT,
    index,
    direction: 'in',
    reactions: [],
    edited: false,
    deleted: false,
    readBy: [],
    ...over,
  };
}

describe('messages', () => {
  it('shows a DM as before and a group message with the group first', () => {
    assert.equal(messageText(dm, undefined, NOW), '[12:03] alice@x: hi');
    assert.equal(messageText(inGroup, undefined, NOW), '[12:03] #team alice@x: hello team');
  });

  it('quotes what a reply answers, shortened, or says it answers an earlier message', () => {
    const reply = { ...inGroup, text: 'yes', replyTo: 'm0' };
    assert.equal(
      messageText(reply, { from: 'bob@x', text: 'shall we meet\nat noon?' }, NOW),
      '[12:03] #team alice@x: (reply to bob@x "shall we meet at noon?") yes',
    );
    const long = messageText(reply, { from: 'bob@x', text: 'x'.repeat(100) }, NOW);
    assert.match(long, /\(reply to bob@x "x{39}…"\) yes$/);
    assert.equal(messageText(reply, undefined, NOW), '[12:03] #team alice@x: (reply to an earlier message) yes');
    assert.equal(
      messageText(reply, { from: 'bob@x', text: '', deleted: true }, NOW),
      '[12:03] #team alice@x: (reply to bob@x (message deleted)) yes',
    );
  });

  it('says a message deleted before it was shown was deleted', () => {
    assert.equal(
      messageText({ ...inGroup, text: '', deleted: true }, undefined, NOW),
      '[12:03] #team alice@x: (message deleted)',
    );
  });

  it('escapes control characters from peers', () => {
    const sneaky = { ...inGroup, group: 'te\x1b[2Jam', text: 'a\x07b' };
    assert.equal(messageText(sneaky, undefined, NOW), '[12:03] #te\\x1b[2Jam alice@x: a\\x07b');
  });

  it('gives a group message a group field (and a reply its replyTo) in JSON', () => {
    assert.deepEqual(messageJson(dm), {
      id: 'm1',
      from: 'alice@x',
      text: 'hi',
      conversation: 'alice@x',
      sentAt: AT.toISOString(),
      seq: 4,
    });
    const j = messageJson({ ...inGroup, replyTo: 'm1' });
    assert.equal(j.group, 'team');
    assert.equal(j.conversation, GROUP_ID);
    assert.equal(j.replyTo, 'm1');
    assert.equal('group' in messageJson(dm), false);
    assert.equal('replyTo' in messageJson(dm), false);
  });

  it('prints what recv prints: one JSON object per line, or one text line per message', () => {
    const capture = () => {
      const out = new PassThrough();
      let text = '';
      out.on('data', (d: Buffer) => (text += d.toString()));
      const io = { stdout: out, stderr: out, stdin: new PassThrough(), env: {} } as Io;
      return { io, text: () => text };
    };
    const asJson = capture();
    printMessages(asJson.io, true, [dm, inGroup]);
    const lines = asJson.text().trimEnd().split('\n');
    assert.equal(lines.length, 2);
    assert.deepEqual(
      lines.map((l) => (JSON.parse(l) as { group?: string }).group),
      [undefined, 'team'],
    );
    const asText = capture();
    printMessages(asText.io, false, [{ ...inGroup, replyTo: 'm1' }], new Map([['m1', { from: 'bob@x', text: 'q' }]]));
    // The clock shows the day too when the message is not from today: this runs on any day.
    assert.match(asText.text(), /^\[(\d\d-\d\d )?\d\d:\d\d\] #team alice@x: \(reply to bob@x "q"\) hello team\n$/);
  });

  it('adds the day to a time that is not today', () => {
    assert.equal(clock(AT, NOW), '[12:03]');
    assert.equal(clock(new Date(2026, 10, 24, 9, 5), NOW), '[11-24 09:05]');
  });
});

describe('files', () => {
  const BLOB = 'ab'.repeat(32);
  const photo = { id: BLOB, name: 'photo.jpg', size: 1_258_291, mediaType: 'image/jpeg' };
  const fileMessage: ReceivedMessage = { ...dm, text: 'photo.jpg', file: photo };

  it('gives sizes in binary units with one decimal', () => {
    assert.equal(fileSize(0), '0 B');
    assert.equal(fileSize(1023), '1023 B');
    assert.equal(fileSize(1024), '1.0 KiB');
    assert.equal(fileSize(1536), '1.5 KiB');
    assert.equal(fileSize(1_258_291), '1.2 MiB');
    assert.equal(fileSize(52_428_800), '50.0 MiB');
    assert.equal(fileSize(3 * 1024 ** 3), '3.0 GiB');
  });

  it('shows a file message as [file] NAME (SIZE), in a DM, a group and a reply', () => {
    assert.equal(messageText(fileMessage, undefined, NOW), '[12:03] alice@x: [file] photo.jpg (1.2 MiB)');
    assert.equal(
      messageText({ ...inGroup, text: 'photo.jpg', file: photo, replyTo: 'm0' }, { from: 'bob@x', text: 'pics?' }, NOW),
      '[12:03] #team alice@x: (reply to bob@x "pics?") [file] photo.jpg (1.2 MiB)',
    );
    assert.equal(
      messageText({ ...fileMessage, deleted: true, text: '' }, undefined, NOW),
      '[12:03] alice@x: (message deleted)',
    );
    // The name is the sender's word: it cannot move the cursor either.
    assert.equal(
      messageText({ ...fileMessage, file: { ...photo, name: 'a\x1b[2Jb.txt', size: 12 } }, undefined, NOW),
      '[12:03] alice@x: [file] a\\x1b[2Jb.txt (12 B)',
    );
  });

  it('gives a script the file with id, name, size and type, and the name as text', () => {
    const j = messageJson(fileMessage);
    assert.deepEqual(j.file, { id: BLOB, name: 'photo.jpg', size: 1_258_291, type: 'image/jpeg' });
    assert.equal(j.text, 'photo.jpg');
    assert.equal('file' in messageJson(dm), false);
    const h = historyItemJson({ ...item(3), text: 'photo.jpg', file: photo });
    assert.deepEqual(h.file, { id: BLOB, name: 'photo.jpg', size: 1_258_291, type: 'image/jpeg' });
    assert.equal(h.index, 3);
  });

  it('numbers a file in the history like any message, for /download N', () => {
    const all = [
      item(1),
      item(2, { text: 'photo.jpg', file: photo }),
      item(3, { deleted: true, text: '', file: photo }),
    ];
    assert.deepEqual(historyText(all, all, NOW), [
      '1 [12:03] bob@x: message 1',
      '2 [12:03] bob@x: [file] photo.jpg (1.2 MiB)',
      '3 [12:03] bob@x: message deleted',
    ]);
  });

  it('has recv tell a person how to save a file (the id is not in the text otherwise)', () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (d: Buffer) => (text += d.toString()));
    printMessages({ stdout: out, stderr: out, stdin: new PassThrough(), env: {} } as Io, false, [fileMessage, dm]);
    const [first, second] = text.trimEnd().split('\n');
    assert.match(first!, new RegExp(`: \\[file\\] photo\\.jpg \\(1\\.2 MiB\\)  \\(qpq download ${BLOB}\\)$`));
    assert.match(second!, /alice@x: hi$/);
  });

  it('words what send-file and download print', () => {
    assert.equal(sentFileText(photo, 'bob@x'), 'sent photo.jpg (1.2 MiB) to bob@x');
    assert.equal(sentFileText(photo, '#team'), 'sent photo.jpg (1.2 MiB) to #team');
    assert.equal(savedFileText(photo, '/home/me/photo.jpg'), 'saved photo.jpg (1.2 MiB) to /home/me/photo.jpg');
  });
});

describe('history', () => {
  it('numbers items, marks replies, reactions, edits, deletes and the status of own messages', () => {
    const all = [
      item(1),
      item(2, { from: 'me@x', direction: 'out', status: 'read', text: 'sure', replyTo: 'h1', edited: true }),
      item(3, {
        reactions: [
          { emoji: '👍', from: ['alice@x', 'me@x'] },
          { emoji: '🎉', from: ['me@x'] },
        ],
      }),
      item(4, { deleted: true, text: '' }),
      item(5, { from: 'me@x', direction: 'out', status: 'pending', text: 'on its way', replyTo: 'gone' }),
      item(6, { from: 'me@x', direction: 'out', status: 'delivered', deleted: true, text: '' }),
      item(7, { from: 'me@x', direction: 'out', status: 'sent' }),
    ];
    assert.deepEqual(historyText(all, all, NOW), [
      '1 [12:03] bob@x: message 1',
      '2 [12:03] me@x: (reply to 1) sure (edited) · read',
      '3 [12:03] bob@x: message 3 [👍 alice@x, me@x; 🎉 me@x]',
      '4 [12:03] bob@x: message deleted',
      '5 [12:03] me@x: (reply to an earlier message) on its way · pending',
      '6 [12:03] me@x: message deleted · delivered',
      '7 [12:03] me@x: message 7 · sent',
    ]);
  });

  it('lines numbers up and still numbers a reply to a message older than those shown', () => {
    const all = Array.from({ length: 12 }, (_, i) => item(i + 1));
    all[11] = item(12, { replyTo: 'h2', text: 'late answer' });
    const shown = all.slice(-3);
    assert.deepEqual(historyText(shown, all, NOW), [
      '10 [12:03] bob@x: message 10',
      '11 [12:03] bob@x: message 11',
      '12 [12:03] bob@x: (reply to 2) late answer',
    ]);
    const short = [item(9), item(10)];
    assert.deepEqual(
      historyText(short, short, NOW).map((l) => l.slice(0, 3)),
      [' 9 ', '10 '],
    );
  });

  it('gives a script every field, with the group and the replied-to number', () => {
    const all = [item(1), item(2, { direction: 'out', status: 'delivered', replyTo: 'h1', readBy: ['bob@x'] })];
    const j = historyItemJson(all[1]!, all);
    assert.equal(j.index, 2);
    assert.equal(j.group, 'team');
    assert.equal(j.conversation, GROUP_ID);
    assert.equal(j.replyTo, 'h1');
    assert.equal(j.replyToIndex, 1);
    assert.equal(j.status, 'delivered');
    assert.equal(j.direction, 'out');
    assert.deepEqual(j.readBy, ['bob@x']);
    assert.equal(j.deleted, false);
    assert.doesNotThrow(() => JSON.stringify(j));
  });
});

describe('conversation events', () => {
  const c = GROUP_ID;
  const say = (e: ConversationEvent, ctx = {}) => eventText(e, { conversation: team, ...ctx });

  it('says who is typing where', () => {
    assert.equal(say({ kind: 'typing', conversation: c, from: 'alice@x' }), '* alice@x is typing in #team');
    assert.equal(
      eventText(
        { kind: 'typing', conversation: 'alice@x', from: 'alice@x' },
        { conversation: { kind: 'dm', name: 'alice@x' } },
      ),
      '* alice@x is typing',
    );
  });

  it('says reactions, edits, deletes and read receipts with what they are about', () => {
    const target = { from: 'me@x', text: 'lunch?' };
    assert.equal(
      say(
        { kind: 'reaction', conversation: c, from: 'bob@x', targetId: 'h1', emoji: '👍', removed: false },
        { target },
      ),
      '* bob@x reacted 👍 to me@x "lunch?" in #team',
    );
    assert.equal(
      say({ kind: 'reaction', conversation: c, from: 'bob@x', targetId: 'h1', emoji: '👍', removed: true }),
      '* bob@x took back 👍 from a message in #team',
    );
    assert.equal(
      say({ kind: 'edit', conversation: c, from: 'bob@x', targetId: 'h1', text: 'fixed' }),
      '* bob@x edited a message in #team: fixed',
    );
    assert.equal(
      say({ kind: 'delete', conversation: c, from: 'bob@x', targetId: 'h1' }),
      '* bob@x deleted a message in #team',
    );
    assert.equal(
      say({ kind: 'read', conversation: c, from: 'bob@x', messageIds: ['h1'] }, { target }),
      '* bob@x read your message "lunch?" in #team',
    );
    assert.equal(
      say({ kind: 'read', conversation: c, from: 'bob@x', messageIds: ['h1', 'h2', 'h3'] }),
      '* bob@x read 3 of your messages in #team',
    );
  });

  it('says what a settings change changed', () => {
    const settings = (name: string, disappearAfterMs: number): ConversationEvent => ({
      kind: 'settings',
      conversation: c,
      from: 'bob@x',
      name,
      disappearAfterMs,
    });
    assert.equal(
      say(settings('crew', 0), {
        conversation: { kind: 'group', name: 'crew' },
        before: { name: 'team', disappearAfterMs: 0 },
      }),
      '* bob@x renamed #team to #crew',
    );
    assert.equal(
      say(settings('team', 3_600_000), { before: { name: 'team', disappearAfterMs: 0 } }),
      '* bob@x set messages in #team to disappear after 1h',
    );
    assert.equal(
      say(settings('team', 0), { before: { name: 'team', disappearAfterMs: 600_000 } }),
      '* bob@x turned disappearing messages off in #team',
    );
    assert.equal(
      say(settings('team', 30_000)),
      '* bob@x named the group #team and set messages in #team to disappear after 30s',
    );
    assert.equal(
      eventText(
        { kind: 'settings', conversation: 'bob@x', from: 'bob@x', name: '', disappearAfterMs: 604_800_000 },
        { conversation: { kind: 'dm', name: 'bob@x' } },
      ),
      '* bob@x set messages in the conversation with bob@x to disappear after 7d',
    );
  });

  it('prints membership texts as the SDK words them', () => {
    assert.equal(
      say({ kind: 'membership', conversation: c, text: 'alice@x added you to #team' }),
      '* alice@x added you to #team',
    );
  });

  it('gives a script the event with its kind, conversation, and the group name', () => {
    const e: ConversationEvent = { kind: 'typing', conversation: c, from: 'alice@x' };
    assert.deepEqual(eventJson(e, { conversation: team }), {
      type: 'event',
      kind: 'typing',
      conversation: c,
      from: 'alice@x',
      group: 'team',
    });
    assert.equal('group' in eventJson(e, { conversation: { kind: 'dm', name: 'alice@x' } }), false);
  });
});

describe('lists', () => {
  const summary = (over: Partial<ConversationSummary>): ConversationSummary => ({
    id: GROUP_ID,
    kind: 'group',
    name: 'team',
    members: ['alice@x', 'bob@x'],
    messages: 3,
    unshown: 0,
    unread: 2,
    disappearAfterMs: 0,
    left: false,
    ...over,
  });

  it('shows each conversation with kind, name, unread count and timer, marking the current one', () => {
    assert.equal(
      conversationLine(summary({ disappearAfterMs: 3_600_000 }), GROUP_ID),
      '> group #team  2 unread, messages disappear after 1h',
    );
    assert.equal(
      conversationLine(summary({ id: 'bob@x', kind: 'dm', name: 'bob@x', peer: 'bob@x', unread: 0 }), GROUP_ID),
      '  dm    bob@x  0 unread',
    );
    assert.equal(conversationLine(summary({ left: true })), '  group #team  2 unread (you left)');
    const j = conversationJson(summary({}), GROUP_ID);
    assert.equal(j.kind, 'group');
    assert.equal(j.name, 'team');
    assert.equal(j.unread, 2);
    assert.equal(j.disappearAfterMs, 0);
    assert.equal(j.current, true);
  });

  it('shows members and devices', () => {
    assert.equal(memberLine({ address: 'me@x', devices: ['d1', 'd2'] }, 'me@x'), 'me@x (you, 2 devices)');
    assert.equal(memberLine({ address: 'bob@x', devices: ['d3'] }, 'me@x'), 'bob@x (1 device)');
    const created = new Date(2026, 10, 25, 9, 30);
    assert.equal(
      deviceLine({ deviceId: 'd1', name: 'qpq cli on laptop', createdAt: created, current: true }),
      'd1  qpq cli on laptop  added 2026-11-25 09:30 (this device)',
    );
    assert.equal(
      deviceLine({ deviceId: 'd2', name: 'phone', createdAt: created, current: false }),
      'd2  phone  added 2026-11-25 09:30',
    );
  });

  it('shows the safety number in rows, and says first when it changed', () => {
    const number = Array.from({ length: 12 }, (_, i) => String(10000 + i)).join(' ');
    const same = safetyNumberText({ peer: 'bob@x', number, changed: false });
    assert.equal(same.length, 4);
    assert.match(same[0]!, /^safety number with bob@x/);
    assert.equal(same[1], '  10000 10001 10002 10003');
    assert.equal(same[3], '  10008 10009 10010 10011');
    const changed = safetyNumberText({ peer: 'bob@x', number, changed: true, previous: 'old' });
    assert.match(changed[0]!, /^! the safety number with bob@x CHANGED since you last checked it/);
    assert.equal(changed.length, 5);
  });
});

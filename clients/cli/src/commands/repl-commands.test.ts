import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { REPL_HELP, parseReplLine, type ReplCommand } from './repl-commands.js';

const reads = (line: string, command: ReplCommand) => assert.deepEqual(parseReplLine(line), { ok: true, command });
const refuses = (line: string, error: RegExp) => {
  const parsed = parseReplLine(line);
  assert.equal(parsed.ok, false, `${JSON.stringify(line)} should be refused, got ${JSON.stringify(parsed)}`);
  if (!parsed.ok) {
    assert.match(parsed.error, error);
    assert.ok(!parsed.error.includes('\n'), 'one line');
  }
};

describe('parseReplLine', () => {
  it('sends plain lines as typed, and nothing for an empty one', () => {
    reads('hello there', { name: 'say', text: 'hello there' });
    reads('  two  spaces ', { name: 'say', text: '  two  spaces ' });
    reads('', { name: 'nothing' });
    reads('   ', { name: 'nothing' });
    reads('//help is a message', { name: 'say', text: '/help is a message' });
  });

  it('switches conversation by @user, user, user@domain or #group; /dm is /switch @USER', () => {
    reads('/switch @bob', { name: 'switch', target: '@bob' });
    reads('/switch bob', { name: 'switch', target: 'bob' });
    reads('/switch bob@example.org', { name: 'switch', target: 'bob@example.org' });
    reads('/switch #team', { name: 'switch', target: '#team' });
    reads('/dm bob', { name: 'switch', target: '@bob' });
    reads('/dm @bob', { name: 'switch', target: '@bob' });
    refuses('/switch', /usage: \/switch @USER\|#GROUP/);
    refuses('/switch #', /usage: \/switch/);
    refuses('/switch bob carol', /usage: \/switch/);
    refuses('/dm', /usage: \/dm USER/);
    refuses('/dm #team', /\/dm takes a user; \/switch #team opens a group/);
    refuses('/dm @', /usage: \/dm USER/);
  });

  it('lists conversations and shows history (20 by default)', () => {
    reads('/list', { name: 'list' });
    refuses('/list all', /\/list takes no arguments/);
    reads('/history', { name: 'history', count: 20 });
    reads('/history 5', { name: 'history', count: 5 });
    reads('/history 1000', { name: 'history', count: 1000 });
    refuses('/history 0', /number of messages from 1 to 1000, got "0"/);
    refuses('/history -3', /got "-3"/);
    refuses('/history ten', /got "ten"/);
    refuses('/history 1001', /got "1001"/);
    refuses('/history 2 3', /usage: \/history \[N\]/);
  });

  it('replies, edits and deletes by message number, keeping the text as typed', () => {
    reads('/reply 3 see you  then', { name: 'reply', index: 3, text: 'see you  then' });
    reads('/edit 12 fixed typo', { name: 'edit', index: 12, text: 'fixed typo' });
    reads('/delete 4', { name: 'delete', index: 4 });
    refuses('/reply', /usage: \/reply N TEXT/);
    refuses('/reply 3', /usage: \/reply N TEXT/);
    refuses('/reply x hello', /N is a message number from \/history \(1, 2, …\), got "x"/);
    refuses('/reply 0 hello', /got "0"/);
    refuses('/edit 2', /usage: \/edit N TEXT/);
    refuses('/edit -1 text', /got "-1"/);
    refuses('/delete', /usage: \/delete N/);
    refuses('/delete 1.5', /got "1.5"/);
    refuses('/delete 1 2', /usage: \/delete N/);
  });

  it('reacts to message N, or to the latest message without N', () => {
    reads('/react 👍', { name: 'react', emoji: '👍' });
    reads('/react ❤️ 7', { name: 'react', emoji: '❤️', index: 7 });
    refuses('/react', /usage: \/react EMOJI \[N\]/);
    refuses('/react 👍 two', /got "two"/);
    refuses('/react 👍 1 2', /usage: \/react/);
    refuses(`/react ${'x'.repeat(33)}`, /at most 32 characters/);
  });

  it('reads the group commands', () => {
    reads('/create-group team', { name: 'create-group', group: 'team' });
    reads('/invite carol', { name: 'invite', user: 'carol' });
    reads('/remove carol', { name: 'remove', user: 'carol' });
    reads('/leave', { name: 'leave' });
    reads('/rename crew', { name: 'rename', group: 'crew' });
    reads('/members', { name: 'members' });
    reads('/rotate-keys', { name: 'rotate-keys' });
    reads('/typing', { name: 'typing' });
    refuses('/create-group', /usage: \/create-group NAME/);
    refuses('/create-group two words', /usage: \/create-group NAME/);
    refuses('/invite', /usage: \/invite USER/);
    refuses('/invite a b', /usage: \/invite USER/);
    refuses('/remove', /usage: \/remove USER/);
    refuses('/leave now', /\/leave takes no arguments/);
    refuses('/rename', /usage: \/rename NAME/);
    refuses('/members all', /takes no arguments/);
    refuses('/rotate-keys now', /takes no arguments/);
    refuses('/typing yes', /takes no arguments/);
  });

  it('sets the disappearing timer from a strict duration, or off', () => {
    reads('/disappear 30s', { name: 'disappear', afterMs: 30_000 });
    reads('/disappear 10m', { name: 'disappear', afterMs: 600_000 });
    reads('/disappear 1h', { name: 'disappear', afterMs: 3_600_000 });
    reads('/disappear 7d', { name: 'disappear', afterMs: 604_800_000 });
    reads('/disappear off', { name: 'disappear', afterMs: 0 });
    refuses('/disappear', /usage: \/disappear DURATION\|off/);
    refuses('/disappear 10', /not a duration: "10": write a whole number and one unit/);
    refuses('/disappear 1h30m', /not a duration/);
    refuses('/disappear soon', /not a duration/);
    refuses('/disappear 0s', /\/disappear off/);
    refuses('/disappear 400d', /too long/);
    refuses('/disappear 1 h', /usage: \/disappear/);
  });

  it('reads /devices list|add|rm ID', () => {
    reads('/devices', { name: 'devices', action: 'list' });
    reads('/devices list', { name: 'devices', action: 'list' });
    reads('/devices add', { name: 'devices', action: 'add' });
    reads('/devices rm 0193c0de-1234', { name: 'devices', action: 'rm', deviceId: '0193c0de-1234' });
    refuses('/devices rm', /usage: \/devices rm ID/);
    refuses('/devices rm a b', /usage: \/devices rm ID/);
    refuses('/devices remove x', /usage: \/devices list\|add\|rm ID/);
    refuses('/devices list all', /usage: \/devices list\|add\|rm ID/);
  });

  it('sends a file: the rest of the line is the path, spaces kept, surrounding quotes taken off', () => {
    reads('/send-file photo.jpg', { name: 'send-file', path: 'photo.jpg' });
    reads('/send-file my holiday  photo.jpg', { name: 'send-file', path: 'my holiday  photo.jpg' });
    reads('/send-file "my holiday photo.jpg"', { name: 'send-file', path: 'my holiday photo.jpg' });
    reads("/send-file '/tmp/a b.txt'  ", { name: 'send-file', path: '/tmp/a b.txt' });
    reads('/send-file ~/notes.txt', { name: 'send-file', path: '~/notes.txt' });
    // Only a matching pair is taken off: a quote inside a name stays.
    reads(`/send-file "it's.txt`, { name: 'send-file', path: `"it's.txt` });
    reads(`/send-file it's "here".txt`, { name: 'send-file', path: `it's "here".txt` });
    refuses('/send-file', /^usage: \/send-file PATH$/);
    refuses('/send-file   ', /^usage: \/send-file PATH$/);
    refuses('/send-file ""', /^usage: \/send-file PATH$/);
  });

  it('downloads file N to its own name, or to PATH (spaces kept, quotes taken off)', () => {
    reads('/download 4', { name: 'download', index: 4 });
    reads('/download 4 out.jpg', { name: 'download', index: 4, path: 'out.jpg' });
    reads('/download 12 saved copy of photo.jpg', { name: 'download', index: 12, path: 'saved copy of photo.jpg' });
    reads('/download 12 "/tmp/my dir/"', { name: 'download', index: 12, path: '/tmp/my dir/' });
    reads('/download   7    ~/Downloads ', { name: 'download', index: 7, path: '~/Downloads' });
    refuses('/download', /^usage: \/download N \[PATH\]$/);
    refuses('/download photo.jpg', /N is a message number from \/history \(1, 2, …\), got "photo.jpg"/);
    refuses('/download 0', /got "0"/);
    refuses("/download 3 ''", /^usage: \/download N \[PATH\]$/);
  });

  it('reads /verify, /help and /quit (and /exit)', () => {
    reads('/verify bob', { name: 'verify', user: 'bob' });
    refuses('/verify', /usage: \/verify USER/);
    reads('/help', { name: 'help' });
    reads('/quit', { name: 'quit' });
    reads('/exit', { name: 'quit' });
    reads('  /quit  ', { name: 'quit' });
  });

  it('names an unknown command and points at /help', () => {
    refuses('/frobnicate now', /^unknown command \/frobnicate: \/help lists them$/);
    refuses('/', /^unknown command \/:/);
    refuses('/Switch @bob', /unknown command \/Switch/);
  });
});

describe('REPL_HELP', () => {
  it('lists every command, one line each', () => {
    const lines = REPL_HELP.split('\n');
    const commands = [
      '/create-group NAME',
      '/invite USER',
      '/remove USER',
      '/leave',
      '/rotate-keys',
      '/rename NAME',
      '/members',
      '/list',
      '/switch @USER|#GROUP',
      '/history [N]',
      '/reply N TEXT',
      '/react EMOJI [N]',
      '/edit N TEXT',
      '/delete N',
      '/typing',
      '/devices list|add|rm ID',
      '/verify USER',
      '/disappear DURATION|off',
      '/help',
      '/dm USER',
      '/quit',
      '/send-file PATH',
      '/download N [PATH]',
    ];
    for (const usage of commands) {
      const matching = lines.filter((l) => l.trimStart().startsWith(`${usage} `));
      assert.equal(matching.length, 1, `one line for ${usage}`);
      assert.match(
        matching[0]!,
        new RegExp(`^  ${usage.replace(/[|[\]]/g, '\\$&')}\\s{2,}\\S`),
        'usage, then what it does',
      );
    }
  });
});

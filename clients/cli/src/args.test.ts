import assert from 'node:assert/strict';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ArgumentError, USAGE, parseCommandLine, type Invocation } from './args.js';

const run = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
  const inv = parseCommandLine(argv, env);
  assert.equal(inv.kind, 'run');
  return inv as Extract<Invocation, { kind: 'run' }>;
};
const refuses = (argv: string[], message: RegExp, env: NodeJS.ProcessEnv = {}) =>
  assert.throws(
    () => parseCommandLine(argv, env),
    (err: unknown) => {
      assert.ok(err instanceof ArgumentError, `expected ArgumentError, got ${String(err)}`);
      assert.match(err.message, message);
      assert.ok(!err.message.includes('\n'), 'one line');
      return true;
    },
  );

describe('parseCommandLine', () => {
  it('reads the commands as the issue spells them', () => {
    assert.deepEqual(run(['register', '-u', 'alice', '-p', 'pw']).command, {
      name: 'register',
      username: 'alice',
      password: 'pw',
    });
    assert.deepEqual(run(['login', '--username', 'bob', '--password', 'x y']).command, {
      name: 'login',
      username: 'bob',
      password: 'x y',
    });
    assert.deepEqual(run(['send', 'bob', 'hello there']).command, { name: 'send', to: 'bob', text: 'hello there' });
    assert.deepEqual(run(['recv']).command, { name: 'recv', waitSeconds: 0 });
    assert.deepEqual(run(['recv', '--wait', '2.5']).command, { name: 'recv', waitSeconds: 2.5 });
    assert.deepEqual(run(['repl', '-u', 'a', '-p', 'b']).command, { name: 'repl', username: 'a', password: 'b' });
    assert.deepEqual(run(['kt', 'audit', '--json']).command, { name: 'kt', action: 'audit' });
    assert.deepEqual(run(['kt', 'lookup', 'bob']).command, { name: 'kt', action: 'lookup', user: 'bob' });
    assert.deepEqual(run(['send-file', 'bob', 'photo.jpg']).command, {
      name: 'send-file',
      to: 'bob',
      path: 'photo.jpg',
    });
    assert.deepEqual(run(['download', 'ab12', '--out', '/tmp/x.jpg']).command, {
      name: 'download',
      file: 'ab12',
      out: '/tmp/x.jpg',
    });
  });

  it('sends a file named by one argument, spaces and leading dashes included', () => {
    assert.deepEqual(run(['send-file', 'bob', 'my holiday photo.jpg']).command, {
      name: 'send-file',
      to: 'bob',
      path: 'my holiday photo.jpg',
    });
    assert.equal((run(['send-file', '--', 'bob', '-notes.txt']).command as { path: string }).path, '-notes.txt');
    assert.equal(run(['send-file', 'bob', 'a.txt', '--json']).global.json, true);
    refuses(['send-file'], /send-file needs USER PATH/);
    refuses(['send-file', 'bob'], /send-file needs USER PATH/);
    refuses(['send-file', 'bob', 'my', 'photo.jpg'], /send-file takes one PATH \(quote a path that contains spaces\)/);
    refuses(['send-file', 'bob', ''], /send-file needs a non-empty PATH/);
    refuses(['send-file', ' ', 'a.txt'], /send-file needs a non-empty USER/);
    refuses(['send-file', 'bob', 'a.txt', '--out', 'x'], /send-file takes no option --out/);
  });

  it('downloads to --out (or -o), or leaves the place to the file name when it is not given', () => {
    assert.deepEqual(run(['download', 'ab12']).command, { name: 'download', file: 'ab12' });
    assert.equal('out' in run(['download', 'ab12']).command, false);
    assert.deepEqual(run(['download', '-o', 'saved copy.jpg', 'ab12']).command, {
      name: 'download',
      file: 'ab12',
      out: 'saved copy.jpg',
    });
    assert.deepEqual(run(['--json', 'download', 'ab12', '--out=dir/']).command, {
      name: 'download',
      file: 'ab12',
      out: 'dir/',
    });
    refuses(['download'], /download needs FILE_ID/);
    refuses(['download', ' '], /download needs FILE_ID/);
    refuses(
      ['download', 'ab12', 'photo.jpg'],
      /download takes one FILE_ID \(got "photo.jpg" too\); --out PATH names the file/,
    );
    refuses(['download', 'ab12', '--out'], /--out needs a value/);
    refuses(['download', 'ab12', '--out', ''], /--out needs a value/);
    refuses(['download', 'ab12', '--wait', '3'], /download takes no option --wait/);
  });

  it('lists the file commands in the usage', () => {
    assert.match(USAGE, /^ {2}send-file USER PATH {2,}\S/m);
    assert.match(USAGE, /^ {2}download FILE_ID \[--out PATH\] {2,}\S/m);
    // Descriptions line up in one column.
    const columns = USAGE.split('\n')
      .filter((l) => /^ {2}[a-z]/.test(l))
      .map((l) => /^ {2}\S.*? {2,}(?=\S)/.exec(l)![0].length);
    assert.equal(new Set(columns).size, 1, `one column, got ${columns.join(', ')}`);
  });

  it('says what kt needs', () => {
    refuses(['kt'], /kt needs audit or lookup USER/);
    refuses(['kt', 'lookup'], /kt lookup needs USER/);
    refuses(['kt', 'lookup', 'a', 'b'], /kt lookup needs USER/);
    refuses(['kt', 'audit', 'x'], /kt audit takes no arguments/);
    refuses(['kt', 'verify'], /unknown kt command "verify"/);
  });

  it('takes global flags before the command, and --json after it too', () => {
    const before = run(['--server', 'h:1', '--data-dir', '/d', '--ca', '/ca.pem', '--json', 'recv', '--wait', '3']);
    assert.deepEqual(before.global, { server: 'h:1', dataDir: '/d', ca: '/ca.pem', json: true });
    assert.equal(run(['recv', '--json']).global.json, true);
    assert.equal(run(['send', 'bob', 'hi', '--json']).global.json, true);
    assert.equal(run(['recv']).global.json, false);
  });

  it('falls back to QPQ_SERVER, QPQ_DATA_DIR, then the defaults', () => {
    assert.deepEqual(run(['recv']).global, {
      server: '127.0.0.1:7000',
      dataDir: join(homedir(), '.qpq'),
      ca: undefined,
      json: false,
    });
    const fromEnv = run(['recv'], { QPQ_SERVER: 'gw:7443', QPQ_DATA_DIR: '/srv/qpq' }).global;
    assert.equal(fromEnv.server, 'gw:7443');
    assert.equal(fromEnv.dataDir, '/srv/qpq');
    assert.equal(run(['--server', 'x:2', 'recv'], { QPQ_SERVER: 'gw:7443' }).global.server, 'x:2', 'the flag wins');
  });

  it('keeps message text as written, including words after the first and a leading dash after --', () => {
    assert.equal((run(['send', 'bob', 'two', 'words']).command as { text: string }).text, 'two words');
    assert.equal((run(['send', '--', 'bob', '-- not a flag']).command as { text: string }).text, '-- not a flag');
  });

  it('takes the password from QPQ_PASSWORD when -p is missing', () => {
    assert.deepEqual(run(['login', '-u', 'a'], { QPQ_PASSWORD: 'secret' }).command, {
      name: 'login',
      username: 'a',
      password: 'secret',
    });
  });

  it('asks for help', () => {
    assert.deepEqual(parseCommandLine(['--help'], {}), { kind: 'help' });
    assert.deepEqual(parseCommandLine(['send', '-h'], {}), { kind: 'help' });
  });

  it('refuses wrong calls with one line each', () => {
    refuses([], /no command given/);
    refuses(
      ['frobnicate'],
      /unknown command "frobnicate": expected register, login, send, send-file, recv, download, repl or kt$/,
    );
    refuses(['--nope', 'recv'], /unknown option --nope/);
    refuses(['register', '-u', 'a'], /register needs -p PASS/);
    refuses(['register', '-p', 'a'], /register needs -u NAME/);
    refuses(['login', '-u'], /option --username needs a value/);
    refuses(['send', 'bob'], /send needs USER TEXT/);
    refuses(['send', 'bob', '   '], /non-empty TEXT/);
    refuses(['recv', '--wait', 'soon'], /--wait needs a number of seconds/);
    refuses(['recv', '--wait=-1'], /--wait needs a number of seconds/);
    refuses(['recv', 'extra'], /recv takes no arguments/);
    refuses(['send', 'bob', 'hi', '-u', 'x'], /send takes no option -u/);
    refuses(['recv', '--wait'], /--wait needs a value/);
    refuses(['--json=yes', 'recv'], /--json takes no value/);
    refuses(['--server', '', 'recv'], /--server needs a value/);
  });
});

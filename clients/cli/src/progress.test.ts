import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createProgress } from './progress.js';

const MiB = 1024 * 1024;

/** A stream that keeps what was written, standing in for a terminal (isTTY) or a pipe. */
class Captured extends Writable {
  text = '';
  writes = 0;
  constructor(
    readonly isTTY: boolean,
    readonly columns?: number,
  ) {
    super();
  }
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.text += chunk.toString();
    this.writes++;
    callback();
  }
  /** What a terminal shows: each `\r` returns to the start of the line and later text overwrites. */
  screen(): string[] {
    return this.text.split('\n').map((line) => {
      let shown = '';
      for (const part of line.split('\r')) shown = part + shown.slice(part.length);
      return shown.trimEnd();
    });
  }
}

/** A clock the test moves by hand. */
function clock() {
  let t = 1_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('progress on a terminal', () => {
  it('redraws one line with a bar, percent, sizes and speed, and ends it with a newline', () => {
    const out = new Captured(true);
    const c = clock();
    const p = createProgress(out, 'upload photo.jpg', 50 * MiB, c);
    for (let sent = 0; sent <= 22.5 * MiB; sent += 2.5 * MiB) {
      p.update(sent);
      c.advance(800); // 2.5 MiB per 0.8 s = 3.1 MiB/s
    }
    assert.ok(!out.text.includes('\n'), 'nothing but redraws before the end');
    assert.deepEqual(out.screen(), ['upload photo.jpg [=========>          ] 45%  22.5/50.0 MiB  3.1 MiB/s']);
    for (let sent = 25 * MiB; sent <= 50 * MiB; sent += 2.5 * MiB) {
      p.update(sent);
      c.advance(800);
    }
    p.done();
    const screen = out.screen();
    assert.equal(screen.length, 2);
    assert.match(screen[0]!, /^upload photo\.jpg \[={20}\] 100% {2}50\.0\/50\.0 MiB {2}3\.0 MiB\/s$/);
    assert.equal(screen[1], '', 'the line is ended');
  });

  it('redraws at most about ten times a second, but always shows the end', () => {
    const out = new Captured(true);
    const c = clock();
    const p = createProgress(out, 'download a.bin', 1000 * 65536, c);
    for (let i = 1; i <= 1000; i++) {
      p.update(i * 65536);
      c.advance(5); // 200 updates a second for 5 s
    }
    assert.ok(out.writes >= 45 && out.writes <= 51, `${out.writes} redraws in 5 s`);
    const before = out.writes;
    p.done();
    assert.ok(out.writes > before);
    assert.match(out.screen()[0]!, / 100% {2}62\.5\/62\.5 MiB/);
  });

  it('leaves no trace of a longer earlier line, and sizes in KiB or bytes for small files', () => {
    const out = new Captured(true);
    const c = clock();
    const p = createProgress(out, 'upload note.txt', 3000, c);
    p.update(1000);
    c.advance(1000); // speed shows: 1000 B in 1 s
    p.update(2000);
    c.advance(100);
    assert.equal(out.screen()[0], 'upload note.txt [=============>      ] 66%  2.0/2.9 KiB  1000 B/s');
    c.advance(3500); // stalled: the samples of the speed window are too old, so no speed is shown
    p.update(2010);
    assert.equal(out.screen()[0], 'upload note.txt [=============>      ] 67%  2.0/2.9 KiB');
    p.fail();
    assert.deepEqual(out.screen(), ['upload note.txt [=============>      ] 67%  2.0/2.9 KiB', '']);
    p.update(3000);
    p.done();
    assert.equal(out.screen().length, 2, 'nothing after fail');
  });

  it('shortens a long name to fit the terminal width', () => {
    const out = new Captured(true, 60);
    const p = createProgress(out, `upload ${'x'.repeat(100)}.jpg`, MiB, clock());
    p.update(MiB / 2);
    const [line] = out.screen();
    assert.ok(line!.length <= 59, `${line!.length} columns`);
    assert.match(line!, /^…x+\.jpg \[={10}> +\] 50% {2}0\.5\/1\.0 MiB$/);
  });

  it('shows a peer-chosen name without letting it move the cursor', () => {
    const out = new Captured(true);
    const p = createProgress(out, 'download evil\r\x1b[2Jname', 10, clock());
    p.done();
    assert.ok(!out.text.includes('\x1b'));
    assert.equal(out.text.split('\r').length, 2, 'only the redraw itself');
    assert.match(out.screen()[0]!, /^download evil\\x0d\\x1b\[2Jname \[/);
  });
});

describe('progress elsewhere (a pipe or a log)', () => {
  it('prints a plain line at each 10 % step and at 100 %', () => {
    const out = new Captured(false);
    const p = createProgress(out, 'upload photo.jpg', 50 * MiB, clock());
    for (let sent = 0; sent <= 50 * MiB; sent += MiB) p.update(sent);
    p.done();
    const lines = out.text.split('\n');
    assert.equal(lines.pop(), '');
    assert.deepEqual(lines, [
      'upload photo.jpg: 10% (5.0/50.0 MiB)',
      'upload photo.jpg: 20% (10.0/50.0 MiB)',
      'upload photo.jpg: 30% (15.0/50.0 MiB)',
      'upload photo.jpg: 40% (20.0/50.0 MiB)',
      'upload photo.jpg: 50% (25.0/50.0 MiB)',
      'upload photo.jpg: 60% (30.0/50.0 MiB)',
      'upload photo.jpg: 70% (35.0/50.0 MiB)',
      'upload photo.jpg: 80% (40.0/50.0 MiB)',
      'upload photo.jpg: 90% (45.0/50.0 MiB)',
      'upload photo.jpg: 100% (50.0/50.0 MiB)',
    ]);
    assert.ok(!out.text.includes('\r'));
  });

  it('prints one line for a jump over several steps, and 100 % from done() when the updates stopped short', () => {
    const out = new Captured(false);
    const p = createProgress(out, 'download a.bin', 1000, clock());
    p.update(50);
    p.update(99);
    p.update(450);
    p.update(460);
    p.update(510);
    p.done();
    p.done();
    assert.equal(
      out.text,
      [
        'download a.bin: 45% (450/1000 B)',
        'download a.bin: 51% (510/1000 B)',
        'download a.bin: 100% (1000/1000 B)',
        '',
      ].join('\n'),
    );
  });

  it('prints nothing more after a failure, and 100 % once for an empty file', () => {
    const out = new Captured(false);
    const p = createProgress(out, 'upload a', 100, clock());
    p.update(30);
    p.fail();
    p.update(100);
    p.done();
    assert.equal(out.text, 'upload a: 30% (30/100 B)\n');

    const empty = new Captured(false);
    const q = createProgress(empty, 'upload empty', 0, clock());
    q.update(0);
    q.done();
    assert.equal(empty.text, 'upload empty: 100% (0/0 B)\n');
  });
});

import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import type { GlobalOptions } from '../args.js';
import type { Io } from '../output.js';
import { transferProgress, withProgress } from './transfer-progress.js';

const global = (json: boolean): GlobalOptions => ({ server: 's', dataDir: 'd', ca: undefined, json });

/** stderr as a pipe (not a terminal): progress.ts then writes plain lines. */
function capture() {
  const stderr = new PassThrough();
  let text = '';
  stderr.on('data', (d: Buffer) => (text += d.toString()));
  const io: Io = { stdout: new PassThrough(), stderr, stdin: new PassThrough(), env: {} };
  return { io, text: () => text };
}

describe('transferProgress', () => {
  it('prints plain progress lines on stderr, labelled with the name known at the first report', async () => {
    const { io, text } = capture();
    let name = 'FILE_ID';
    const progress = transferProgress(global(false), io, () => `download ${name}`);
    const result = await withProgress(progress, async () => {
      name = 'photo.jpg';
      for (let done = 0; done <= 2 * 1024 * 1024; done += 256 * 1024) progress.listener!(done, 2 * 1024 * 1024);
      return 'saved';
    });
    assert.equal(result, 'saved');
    const lines = text().trimEnd().split('\n');
    assert.equal(lines[0], 'download photo.jpg: 12% (0.3/2.0 MiB)');
    assert.equal(lines.at(-1), 'download photo.jpg: 100% (2.0/2.0 MiB)');
    assert.equal(lines.filter((l) => l.endsWith('(2.0/2.0 MiB)')).length, 1, '100 % once');
  });

  it('prints nothing with --json, so a script sees only warnings and failures on stderr', async () => {
    const { io, text } = capture();
    const progress = transferProgress(global(true), io, () => 'upload a.jpg');
    assert.equal(progress.listener, undefined);
    await withProgress(progress, async () => undefined);
    assert.equal(text(), '');
  });

  it('stops at a failure without claiming 100 %, and passes the failure on', async () => {
    const { io, text } = capture();
    const progress = transferProgress(global(false), io, () => 'upload a.jpg');
    await assert.rejects(
      withProgress(progress, async () => {
        progress.listener!(600, 1000);
        throw new Error('connection lost');
      }),
      /connection lost/,
    );
    assert.equal(text(), 'upload a.jpg: 60% (600/1000 B)\n');
  });
});

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { DownloadTargetError, downloadTarget } from './download.js';

// Real directories: what a person would lose to a download that overwrote a file is real too.
const root = mkdtempSync(join(tmpdir(), 'qpq-download-target-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => {
  const dir = join(root, `d${n++}`);
  mkdirSync(dir);
  return dir;
};
const RETRY = 'pass --out PATH to save it elsewhere';

const refuses = (run: () => unknown, message: RegExp) =>
  assert.throws(run, (err: unknown) => {
    assert.ok(err instanceof DownloadTargetError, `expected DownloadTargetError, got ${String(err)}`);
    assert.match(err.message, message);
    return true;
  });

describe('downloadTarget', () => {
  it("saves under the file's own name in the current directory when no place is given", () => {
    const cwd = fresh();
    assert.equal(downloadTarget('photo.jpg', undefined, cwd, RETRY), join(cwd, 'photo.jpg'));
  });

  it('saves to PATH as given, relative to the current directory, or inside it when it is a directory', () => {
    const cwd = fresh();
    assert.equal(downloadTarget('photo.jpg', 'copy.jpg', cwd, RETRY), join(cwd, 'copy.jpg'));
    assert.equal(downloadTarget('photo.jpg', '/abs/../' + cwd.slice(1) + '/x', '/', RETRY), join(cwd, 'x'));
    mkdirSync(join(cwd, 'my pics'));
    assert.equal(downloadTarget('photo.jpg', 'my pics', cwd, RETRY), join(cwd, 'my pics', 'photo.jpg'));
    assert.equal(downloadTarget('photo.jpg', 'my pics/', cwd, RETRY), join(cwd, 'my pics', 'photo.jpg'));
  });

  it('never overwrites: an existing file, a file of that name in the directory, or a dangling link', () => {
    const cwd = fresh();
    writeFileSync(join(cwd, 'photo.jpg'), 'mine');
    refuses(
      () => downloadTarget('photo.jpg', undefined, cwd, RETRY),
      new RegExp(`^${join(cwd, 'photo.jpg')} already exists: a download never overwrites a file; pass --out PATH`),
    );
    refuses(() => downloadTarget('other.jpg', 'photo.jpg', cwd, RETRY), /photo\.jpg already exists/);
    mkdirSync(join(cwd, 'pics'));
    writeFileSync(join(cwd, 'pics', 'photo.jpg'), 'mine');
    refuses(() => downloadTarget('photo.jpg', 'pics', cwd, RETRY), /pics\/photo\.jpg already exists/);
    symlinkSync(join(cwd, 'nowhere'), join(cwd, 'link.jpg'));
    refuses(() => downloadTarget('x', 'link.jpg', cwd, RETRY), /link\.jpg already exists/);
  });

  it('says so when the directory to save in does not exist', () => {
    const cwd = fresh();
    refuses(
      () => downloadTarget('photo.jpg', 'no/such/dir/photo.jpg', cwd, RETRY),
      new RegExp(`^no directory ${join(cwd, 'no/such/dir')} to save the file in$`),
    );
    writeFileSync(join(cwd, 'plain'), '');
    refuses(() => downloadTarget('photo.jpg', 'plain/photo.jpg', cwd, RETRY), /no directory .*plain to save/);
  });
});

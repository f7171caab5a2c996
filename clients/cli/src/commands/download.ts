import { lstatSync, statSync, type Stats } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { GlobalOptions } from '../args.js';
import { fileJson, json, line, savedFileText, type Io } from '../output.js';
import { openClient, printWarnings } from './account.js';
import { transferProgress, withProgress } from './transfer-progress.js';

/** Where a download would go is not a place to write a new file. */
export class DownloadTargetError extends Error {
  override readonly name = 'DownloadTargetError';
}

/**
 * Where a download of the file `name` goes: `out` as given (relative to `cwd`), inside `out` when it is
 * a directory, or `name` in `cwd` without `out`. Never a path that exists — a download does not
 * overwrite anything — and never into a directory that does not exist. `retry` says how to choose
 * another place (it differs between the command line and the REPL).
 * @example downloadTarget('photo.jpg', undefined, '/home/me', '--out PATH') // '/home/me/photo.jpg'
 */
export function downloadTarget(name: string, out: string | undefined, cwd: string, retry: string): string {
  let target = out === undefined ? join(cwd, name) : resolve(cwd, out);
  if (statOf(target)?.isDirectory()) target = join(target, name);
  // lstat: a dangling symlink exists too, and writing through it would land somewhere else.
  if (statOf(target, lstatSync)) {
    throw new DownloadTargetError(`${target} already exists: a download never overwrites a file; ${retry}`);
  }
  const parent = dirname(target);
  if (!statOf(parent)?.isDirectory()) {
    throw new DownloadTargetError(`no directory ${parent} to save the file in`);
  }
  return target;
}

/** What is at `path`, or undefined when nothing is (also when a part of the path is a file). */
function statOf(path: string, how: typeof statSync = statSync): Stats | undefined {
  try {
    return how(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

/**
 * `qpq download FILE_ID [--out PATH]`: fetches a file this device received (or sent), by its id as
 * `recv` shows it or by its message's id, checks every chunk, and saves it. Nothing is written when a
 * chunk does not check out.
 */
export async function download(
  global: GlobalOptions,
  io: Io,
  fileId: string,
  out: string | undefined,
): Promise<number> {
  const client = await openClient(global, io);
  printWarnings(client, io);
  try {
    let name = fileId;
    const progress = transferProgress(global, io, () => `download ${name}`);
    const saved = await withProgress(progress, () =>
      client.downloadFile(
        fileId,
        (fileName) => {
          name = fileName;
          return downloadTarget(fileName, out, process.cwd(), 'pass --out PATH to save it elsewhere');
        },
        progress.listener ? { onProgress: progress.listener } : {},
      ),
    );
    if (global.json) json(io.stdout, { ok: true, path: saved.path, file: fileJson(saved.file) });
    else line(io.stdout, savedFileText(saved.file, saved.path));
    return 0;
  } finally {
    await client.close();
  }
}

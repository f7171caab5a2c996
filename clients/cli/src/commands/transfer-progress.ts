// Progress of a one-shot file transfer on stderr (a bar on a terminal, plain lines otherwise: see
// progress.ts), or none with --json, so a script reading stderr sees only warnings and the failure line.
import type { ProgressListener } from '@qpq/sdk';
import type { GlobalOptions } from '../args.js';
import type { Io } from '../output.js';
import { createProgress, type Progress } from '../progress.js';

export interface TransferProgress {
  /** For the SDK's onProgress; undefined with --json. */
  listener: ProgressListener | undefined;
  done(): void;
  fail(): void;
}

/**
 * A progress reporter started at the SDK's first report, when the total is known (and, for a download,
 * the file's name: `label` is read then).
 */
export function transferProgress(global: GlobalOptions, io: Io, label: () => string): TransferProgress {
  if (global.json) return { listener: undefined, done: () => undefined, fail: () => undefined };
  let progress: Progress | undefined;
  return {
    listener: (done, total) => {
      progress ??= createProgress(io.stderr, label(), total);
      progress.update(done);
    },
    done: () => progress?.done(),
    fail: () => progress?.fail(),
  };
}

/** Runs a transfer with `progress`, ending its line whichever way the transfer ends. */
export async function withProgress<T>(progress: TransferProgress, transfer: () => Promise<T>): Promise<T> {
  try {
    const result = await transfer();
    progress.done();
    return result;
  } catch (err) {
    progress.fail();
    throw err;
  }
}

// Progress of a file transfer in the REPL: a few plain lines printed like any other notice, so the
// prompt is redrawn under each (a bar redrawn with `\r` would fight the line being typed).
import type { ProgressListener } from '@qpq/sdk';

/** The REPL says how far a transfer got at every quarter. */
const STEP_PERCENT = 25;

/**
 * A ProgressListener that says `label: P%` at the first report (0 %, or where a resumed upload
 * continues), at each 25 % step crossed, and at 100 %.
 * @example client.sendFile(conv, path, { onProgress: replProgress((t) => screen.info(t), 'upload a.jpg') })
 */
export function replProgress(say: (text: string) => void, label: string): ProgressListener {
  let lastStep = -1;
  return (done, total) => {
    const pct = total <= 0 ? 100 : Math.min(100, Math.max(0, Math.floor((done * 100) / total)));
    const step = Math.floor(pct / STEP_PERCENT);
    if (step <= lastStep) return;
    lastStep = step;
    say(`${label}: ${pct}%`);
  };
}

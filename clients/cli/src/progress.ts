// Progress of a file transfer, for a person watching. On a terminal: one line redrawn in place with
// `\r` (bar, percent, sizes, speed), at most ~10 times a second, ended with a newline. Anywhere else (a
// pipe, a log file, CI): a plain line at each 10 % step and at 100 %, so logs stay short and readable.
// Written by hand rather than with a progress-bar package: it is a few lines, and a package would want
// to own the terminal that the REPL already draws on.
import { printable } from './output.js';

export interface Progress {
  /** Bytes transferred so far, of the whole file (a resumed transfer starts at what was already sent). */
  update(doneBytes: number): void;
  /** The transfer completed: shows 100 % and ends the line. */
  done(): void;
  /** The transfer failed: ends the line where it stopped, so the error that follows starts on its own line. */
  fail(): void;
}

export interface ProgressOptions {
  /** The clock, in ms (tests pass their own to check throttling without sleeping). */
  now?: () => number;
}

const REDRAW_EVERY_MS = 100;
const BAR_WIDTH = 20;
/** The speed shown is over the last few seconds, so it follows a connection that slows down. */
const SPEED_WINDOW_MS = 3000;
/** A speed measured over less than this would mostly be noise; it is left out until then. */
const MIN_SPEED_SPAN_MS = 250;
const STEP_PERCENT = 10;

const KiB = 1024;
const MiB = 1024 * KiB;

/**
 * A progress reporter for a transfer of `totalBytes`, written to `stream` (usually stderr, so stdout
 * stays clean for a script).
 *
 * @example
 * const progress = createProgress(process.stderr, `upload ${name}`, size);
 * try {
 *   await upload(path, { onProgress: (sent) => progress.update(sent) });
 *   progress.done();
 * } catch (err) {
 *   progress.fail();
 *   throw err;
 * }
 */
export function createProgress(
  stream: NodeJS.WritableStream & { isTTY?: boolean; columns?: number },
  label: string,
  totalBytes: number,
  options: ProgressOptions = {},
): Progress {
  const now = options.now ?? (() => performance.now());
  const safeLabel = printable(label);
  const total = Math.max(0, totalBytes);
  const unit = sizeUnit(total);
  const clamp = (bytes: number) => Math.min(total, Math.max(0, bytes));
  let finished = false;

  if (!stream.isTTY) {
    let lastStep = 0;
    let shownComplete = false;
    const print = (bytes: number) => {
      const pct = percent(bytes, total);
      stream.write(`${safeLabel}: ${pct}% (${formatSize(bytes, unit)}/${formatSize(total, unit)} ${unit.name})\n`);
      shownComplete = pct === 100;
    };
    return {
      update(doneBytes) {
        if (finished) return;
        const bytes = clamp(doneBytes);
        const step = Math.floor(percent(bytes, total) / STEP_PERCENT);
        if (step <= lastStep || shownComplete) return;
        lastStep = step;
        print(bytes);
      },
      done() {
        if (finished) return;
        finished = true;
        if (!shownComplete) print(total);
      },
      fail() {
        finished = true;
      },
    };
  }

  let lastDrawAt = -Infinity;
  let shownLength = 0;
  let current = 0;
  let first: Sample | undefined;
  const recent: Sample[] = [];

  const draw = (bytes: number, speed: string) => {
    const pct = percent(bytes, total);
    const tail = `${bar(pct)} ${pct}%  ${formatSize(bytes, unit)}/${formatSize(total, unit)} ${unit.name}${speed ? `  ${speed}` : ''}`;
    const text = `${fitLabel(safeLabel, stream.columns, tail.length + 1)} ${tail}`;
    // Spaces over whatever the previous, longer line left behind (no escape codes needed).
    stream.write(`\r${text}${' '.repeat(Math.max(0, shownLength - text.length))}`);
    shownLength = text.length;
  };

  return {
    update(doneBytes) {
      if (finished) return;
      current = clamp(doneBytes);
      const t = now();
      if (t - lastDrawAt < REDRAW_EVERY_MS) return;
      lastDrawAt = t;
      const sample = { t, bytes: current };
      first ??= sample;
      recent.push(sample);
      while (recent.length > 1 && t - recent[0]!.t > SPEED_WINDOW_MS) recent.shift();
      draw(current, rate(recent[0]!, sample));
    },
    done() {
      if (finished) return;
      finished = true;
      // The whole transfer's average: what a person wants to know once it is over.
      draw(total, first ? rate(first, { t: now(), bytes: total }) : '');
      stream.write('\n');
    },
    fail() {
      if (finished) return;
      finished = true;
      if (shownLength > 0) stream.write('\n');
    },
  };
}

interface Sample {
  t: number;
  bytes: number;
}

interface SizeUnit {
  name: string;
  bytes: number;
}

function percent(bytes: number, total: number): number {
  return total === 0 ? 100 : Math.floor((bytes * 100) / total);
}

function bar(pct: number): string {
  const filled = Math.floor((pct * BAR_WIDTH) / 100);
  if (filled >= BAR_WIDTH) return `[${'='.repeat(BAR_WIDTH)}]`;
  return `[${'='.repeat(filled)}>${' '.repeat(BAR_WIDTH - filled - 1)}]`;
}

/** One unit for both sizes of a line, chosen by the total, so `0.5/50.0 MiB` reads at a glance. */
function sizeUnit(total: number): SizeUnit {
  if (total >= MiB) return { name: 'MiB', bytes: MiB };
  if (total >= KiB) return { name: 'KiB', bytes: KiB };
  return { name: 'B', bytes: 1 };
}

function formatSize(bytes: number, unit: SizeUnit): string {
  return unit.bytes === 1 ? String(bytes) : (bytes / unit.bytes).toFixed(1);
}

function rate(from: Sample, to: Sample): string {
  const ms = to.t - from.t;
  if (ms < MIN_SPEED_SPAN_MS) return '';
  const perSecond = ((to.bytes - from.bytes) * 1000) / ms;
  const unit = sizeUnit(perSecond);
  return `${unit.bytes === 1 ? Math.round(perSecond) : (perSecond / unit.bytes).toFixed(1)} ${unit.name}/s`;
}

/** Shortens the label (keeping its end: the file's extension) so the line fits the terminal without wrapping, which `\r` cannot redraw. */
function fitLabel(label: string, columns: number | undefined, rest: number): string {
  if (!columns) return label;
  const room = Math.max(8, columns - 1 - rest);
  return label.length <= room ? label : `…${label.slice(label.length - room + 1)}`;
}

// Where the REPL prints: text lines for a person (which must not tear the prompt they are typing on) or
// one JSON object per line for a script. Every line a script reads has a `type`.
import type { Interface } from 'node:readline';
import { failureLine, json, line, type Io } from '../output.js';

export class ReplScreen {
  constructor(
    private readonly io: Io,
    readonly asJson: boolean,
    /** Set on a terminal: lines printed while someone types redraw their prompt. */
    private readonly prompt?: Interface,
  ) {}

  /** `value` for a script (it carries its type), `text` for a person. */
  show(value: { type: string } & Record<string, unknown>, text: string | readonly string[]): void {
    if (this.asJson) json(this.io.stdout, value);
    else this.print(typeof text === 'string' ? [text] : text);
  }

  /** A short notice: `* text`, or `{ type: 'info', text, ...data }`. */
  info(text: string, data: Record<string, unknown> = {}): void {
    this.show({ type: 'info', text, ...data }, `* ${text}`);
  }

  /** One line on what went wrong: stderr for a person, `{ type: 'error' }` on stdout for a script. */
  fail(err: unknown): void {
    const message = failureLine(err);
    if (this.asJson) json(this.io.stdout, { type: 'error', error: message });
    else this.print([`! ${message}`], this.io.stderr);
  }

  private print(lines: readonly string[], stream: NodeJS.WritableStream = this.io.stdout): void {
    if (!this.prompt) {
      for (const l of lines) line(stream, l);
      return;
    }
    // Clear the half-typed prompt line, print, then draw the prompt again with what was typed.
    this.io.stdout.write('\r\x1b[K');
    for (const l of lines) line(stream, l);
    this.prompt.prompt(true);
  }
}

// Running external programs with a deadline, and finding them.
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter, join } from 'node:path';

export interface RunOptions {
  cwd?: string;
  /** Milliseconds before the program is killed; every run has one. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** A program that exited non-zero, timed out or could not start; carries its output for the message. */
export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly stdout: string,
    readonly stderr: string,
    options?: { cause?: unknown },
  ) {
    const detail = (stderr.trim() || stdout.trim()).split('\n').slice(-20).join('\n');
    super(`\`${command}\` failed (exit ${exitCode ?? 'none'})${detail ? `:\n${detail}` : ''}`, options);
  }
}

/** Runs `file args…` without a shell; rejects with CommandError unless it exits 0. */
export function run(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const command = [file, ...args].join(' ');
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      {
        cwd: options.cwd,
        env: options.env ?? process.env,
        timeout: options.timeoutMs ?? 120_000,
        maxBuffer: 256 * 1024 * 1024,
        encoding: 'utf8',
      },
      (error, stdout, stderr) => {
        if (!error) return resolve({ stdout, stderr });
        const code = typeof error.code === 'number' ? error.code : null;
        const why = error.killed
          ? `${stderr}\n(killed after ${options.timeoutMs ?? 120_000} ms)`
          : stderr || error.message;
        reject(new CommandError(command, code, stdout, why, { cause: error }));
      },
    );
  });
}

export async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The first executable called `name` on PATH, like `command -v`. */
export async function findOnPath(name: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    if (await isExecutable(candidate)) return candidate;
  }
  return undefined;
}

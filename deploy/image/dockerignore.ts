// The build context `docker build` would send, made without Docker: the repository filtered by
// .dockerignore with BuildKit's rules, so the staged images see exactly the files the real build sees.
import { copyFile, lstat, mkdir, readdir, readFile, readlink, symlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export interface IgnorePattern {
  /** The line as written (without a leading `!`). */
  readonly source: string;
  /** `!pattern`: lets back in what earlier lines left out. */
  readonly exception: boolean;
  readonly regex: RegExp;
}

/**
 * Parses .dockerignore. Patterns are cleaned like Go's filepath.Clean (a leading `/` and `./` go)
 * and compiled as BuildKit compiles them: `**` spans any number of folders, `*` and `?` stay within
 * one, `[…]` is a character class, `\` escapes.
 */
export function parseDockerignore(text: string): IgnorePattern[] {
  const patterns: IgnorePattern[] = [];
  for (const raw of text.split('\n')) {
    let line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const exception = line.startsWith('!');
    if (exception) line = line.slice(1).trim();
    const cleaned = line
      .split('/')
      .filter((s) => s !== '' && s !== '.')
      .join('/');
    if (cleaned === '') continue;
    patterns.push({ source: cleaned, exception, regex: compile(cleaned) });
  }
  return patterns;
}

function compile(pattern: string): RegExp {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i] as string;
    if (ch === '*' && pattern[i + 1] === '*') {
      i++;
      if (pattern[i + 1] === '/') i++;
      re += i + 1 >= pattern.length ? '.*' : '(.*/)?';
    } else if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else if (ch === '\\' && i + 1 < pattern.length) re += `\\${pattern[++i]}`;
    else if ('.+()|{}$^'.includes(ch)) re += `\\${ch}`;
    else re += ch;
  }
  return new RegExp(`${re}$`);
}

/** The index of the last pattern that matches `path` itself or one of its folders, or -1. */
function lastMatch(patterns: readonly IgnorePattern[], path: string): number {
  const segments = path.split('/');
  const prefixes = segments.map((_, i) => segments.slice(0, i + 1).join('/'));
  for (let i = patterns.length - 1; i >= 0; i--) {
    const { regex } = patterns[i] as IgnorePattern;
    if (prefixes.some((p) => regex.test(p))) return i;
  }
  return -1;
}

/**
 * Whether `path` ('/'-separated, relative to the context root) is left out. A pattern that matches
 * a folder matches everything in it (BuildKit's walker carries a folder's matches down to its
 * contents); the last matching line decides.
 */
export function isIgnored(patterns: readonly IgnorePattern[], path: string): boolean {
  const i = lastMatch(patterns, path);
  return i >= 0 && !(patterns[i] as IgnorePattern).exception;
}

/** Whether a left-out folder may still hold something a later `!` line lets back in. */
function mayHoldExceptions(patterns: readonly IgnorePattern[], dir: string): boolean {
  const decided = lastMatch(patterns, dir);
  return patterns.slice(decided + 1).some((p) => p.exception);
}

/** Copies the build context of `root` (filtered by its .dockerignore) to `dest`; answers the files copied. */
export async function copyBuildContext(root: string, dest: string): Promise<string[]> {
  const patterns = parseDockerignore(await readFile(join(root, '.dockerignore'), 'utf8').catch(() => ''));
  const copied: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const entry of await readdir(join(root, rel), { withFileTypes: true })) {
      const path = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        if (!isIgnored(patterns, path) || mayHoldExceptions(patterns, path)) await walk(path);
        continue;
      }
      if (isIgnored(patterns, path)) continue;
      const to = join(dest, path);
      await mkdir(dirname(to), { recursive: true });
      if (entry.isSymbolicLink()) await symlink(await readlink(join(root, path)), to);
      else if ((await lstat(join(root, path))).isFile()) await copyFile(join(root, path), to);
      else continue;
      copied.push(path);
    }
  };
  await walk('');
  return copied.sort();
}

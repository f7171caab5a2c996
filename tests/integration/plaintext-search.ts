// Searching what the server stores for what a client sent: the check behind "the server never sees
// plaintext" (messages, files).
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Every way a secret could sit in a file: as UTF-8, hex, or base64/base64url at any byte alignment. */
export function encodings(secret: string): string[] {
  const bytes = Buffer.from(secret, 'utf8');
  const forms = new Set<string>([secret, bytes.toString('hex'), bytes.toString('hex').toUpperCase()]);
  for (let shift = 0; shift < 3; shift++) {
    // Prefixing 0–2 bytes moves the secret to each base64 alignment; drop the characters the
    // prefix and the unknown following bytes influence.
    const shifted = Buffer.concat([Buffer.alloc(shift), bytes]);
    for (const b64 of [shifted.toString('base64'), shifted.toString('base64url')]) {
      const start = Math.ceil((shift * 4) / 3) + 1;
      const core = b64.replace(/=+$/, '').slice(start, -2);
      if (core.length >= 12) forms.add(core);
    }
  }
  return [...forms];
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(join(entry.parentPath, entry.name));
  }
  return out;
}

/** Which of `secrets` appear (in any encoding) in which files under `dirs`. */
export async function search(dirs: string[], secrets: string[]): Promise<Map<string, string[]>> {
  const needles = secrets.map((s) => ({ s, forms: encodings(s).map((f) => Buffer.from(f, 'latin1')) }));
  const found = new Map<string, string[]>();
  for (const dir of dirs) {
    for (const file of await filesUnder(dir)) {
      const data = await readFile(file).catch(() => undefined);
      if (!data) continue;
      for (const { s, forms } of needles) {
        if (forms.some((f) => data.includes(f))) found.set(s, [...(found.get(s) ?? []), file]);
      }
    }
  }
  return found;
}

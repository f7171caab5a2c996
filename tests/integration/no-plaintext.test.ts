// The server never sees plaintext: after real conversations, neither Postgres (tables and WAL), nor
// the NATS store, nor any service's log holds what was sent — as text, base64 or hex.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TestNetwork } from '@qpq/testnet';
import { bootNetwork, marker, openClient } from './support.js';

/** Every way a secret could sit in a file: as UTF-8, hex, or base64/base64url at any byte alignment. */
function encodings(secret: string): string[] {
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
async function search(dirs: string[], secrets: string[]): Promise<Map<string, string[]>> {
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

describe('the server never sees plaintext', { timeout: 180_000 }, () => {
  let net: TestNetwork;
  const sent: string[] = [];
  const username = `probe${Math.random().toString(36).slice(2, 8)}`;

  before(async () => {
    net = await bootNetwork();
    const alice = await openClient(net, 'alice');
    const bob = await openClient(net, username);
    await alice.register('alice', 'alice password 1');
    await bob.register(username, 'probe password 1');
    for (let i = 0; i < 5; i++) {
      const a = marker(`secret-from-alice-${i}`);
      const b = marker(`secret-from-bob-${i}`);
      sent.push(a, b);
      await alice.sendText(username, a);
      await bob.sendText('alice', b);
    }
    // Both sides read everything, so the text went the whole way.
    await alice.receive();
    await bob.receive();
    const atBob = (await bob.history('alice@localhost')).map((m) => m.text);
    const atAlice = (await alice.history(`${username}@localhost`)).map((m) => m.text);
    for (const s of sent) assert.ok(atBob.includes(s) && atAlice.includes(s), `${s} was exchanged`);
    await alice.close();
    await bob.close();
    // Stop the services so every log line and the NATS store are on disk; Postgres keeps running
    // only to be stopped by destroy(), and its files are read as they are.
    for (const name of net.serviceNames()) await net.stopService(name);
  });
  after(async () => {
    await net?.destroy();
  });

  test('the search finds what the server does know (the username), so it can fail', async () => {
    const found = await search([join(net.dir, 'postgres'), join(net.dir, 'logs')], [username]);
    assert.ok((found.get(username) ?? []).length > 0, 'the username is stored in Postgres');
  });

  test('no message text in Postgres data (tables and WAL), the NATS store, or any log', async () => {
    const dirs = [join(net.dir, 'postgres'), join(net.dir, 'nats'), join(net.dir, 'logs')];
    const found = await search(dirs, sent);
    assert.deepEqual(Object.fromEntries(found), {});
  });
});

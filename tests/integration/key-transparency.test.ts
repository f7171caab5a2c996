/**
 * Key transparency on the whole system (every service its own process, real Postgres, NATS JetStream,
 * QUIC): a device's identity key reaches the log within a second of its login; `qpq kt lookup` and
 * `qpq kt audit` show and check it; a server that tampers with a proof or signs a head that forks from
 * one a client kept is caught by the CLI, which names the user and does not use the key; ktlog killed
 * while devices register loses and duplicates no entry.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { signTreeHead } from '@qpq/crypto';
import { AuthServiceService, DeviceEvent, DeviceEvent_Op } from '@qpq/proto';
import { connect } from 'nats';
import type { QpqClient } from '@qpq/sdk';
import type { TestNetwork } from '@qpq/testnet';
import pg from 'pg';
import { call, connectByHand, registerByHand, startLoginByHand } from './by-hand.js';
import { bootNetwork, dataDirOf, jsonLines, openClient, qpq, waitFor } from './support.js';

const PASSWORD = 'kt test password';
let net: TestNetwork;
let db: pg.Client;
const clients: QpqClient[] = [];

before(async () => {
  net = await bootNetwork();
  db = new pg.Client({ connectionString: net.databaseUrl });
  await db.connect();
});
after(async () => {
  await Promise.allSettled(clients.map((c) => c.close(1_000)));
  await db?.end();
  await net?.destroy();
});

async function registered(name: string, username = name): Promise<QpqClient> {
  const client = await openClient(net, name);
  clients.push(client);
  await client.register(username, PASSWORD);
  return client;
}

/** Logs in `username` by hand as a new device with `identityKey`; resolves when auth has answered. */
async function loginNewDevice(username: string, identityKey: Uint8Array): Promise<string> {
  const conn = await connectByHand(net);
  try {
    const session = await call(conn, AuthServiceService.finishLogin, {
      ...(await startLoginByHand(conn, username, PASSWORD)),
      device: { $case: 'newDevice', value: { identityKey, name: 'by hand' } },
    });
    return session.deviceId;
  } finally {
    await conn.close();
  }
}

async function registerByHandAndLogin(username: string, identityKey: Uint8Array): Promise<string> {
  const conn = await connectByHand(net);
  try {
    await registerByHand(conn, username, PASSWORD);
  } finally {
    await conn.close();
  }
  return loginNewDevice(username, identityKey);
}

/** The log's entry index of a user's first device. */
async function entryIndexOf(address: string): Promise<number> {
  const { rows } = await db.query<{ index: string }>(
    'select index from ktlog.entries where address = $1 order by index limit 1',
    [address],
  );
  assert.ok(rows[0], `${address} is in the log`);
  return Number(rows[0].index);
}

async function logSize(): Promise<number> {
  const { rows } = await db.query<{ size: string }>('select coalesce(max(tree_size), 0) as size from ktlog.tree_heads');
  return Number(rows[0]!.size);
}

const cli = (name: string, args: string[]) => qpq(net, dataDirOf(net, name), args);

describe('key transparency', { timeout: 240_000 }, () => {
  let bob: QpqClient;

  before(async () => {
    bob = await registered('bob');
    const dana = await cli('dana', ['register', '-u', 'dana', '-p', PASSWORD]);
    assert.equal(dana.code, 0, dana.stderr);
  });

  it("a device's identity key is in the log, with a proof, within a second of its login", async () => {
    const identityKey = new Uint8Array(randomBytes(32));
    const deviceId = await registerByHandAndLogin('hana', identityKey);
    const loggedIn = Date.now();
    const entry = await waitFor(
      'hana in the log',
      async () => (await bob.keyHistory('hana')).find((e) => e.deviceId === deviceId),
      5_000,
    );
    const took = Date.now() - loggedIn;
    assert.ok(took < 1_000, `provable in the log ${took} ms after the login (limit 1000 ms)`);
    assert.equal(entry.op, 'add');
    assert.equal(entry.address, 'hana@localhost');
    assert.equal(entry.key, Buffer.from(identityKey).toString('hex'));
  });

  it('kt lookup lists a user’s adds and revokes; kt audit recomputes the whole log', async () => {
    const carol = await registered('carol');
    const carol2 = await openClient(net, 'carol2');
    clients.push(carol2);
    await carol2.login('carol', PASSWORD);
    const [c1, c2] = [(await carol.account())!.deviceId, (await carol2.account())!.deviceId];
    await carol.revokeDevice(c2);
    const lookup = await waitFor('carol’s revoke in the log', async () => {
      const res = await cli('dana', ['--json', 'kt', 'lookup', 'carol']);
      assert.equal(res.code, 0, res.stderr);
      const lines = jsonLines(res.stdout);
      return lines.length >= 3 ? lines : undefined;
    });
    assert.deepEqual(
      lookup.map((l) => [l.op, l.device]),
      [
        ['add', c1],
        ['add', c2],
        ['revoke', c2],
      ],
    );
    const indices = lookup.map((l) => Number(l.index));
    assert.deepEqual(
      indices,
      [...indices].sort((a, b) => a - b),
      'in log order',
    );
    assert.equal(lookup[1]!.key, lookup[2]!.key, 'the revoke names the key that was added');
    assert.match(String(lookup[0]!.key), /^[0-9a-f]{64}$/);

    const text = await cli('dana', ['kt', 'lookup', 'carol']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`revoke +carol@localhost/${c2}`));

    const audit = await cli('dana', ['--json', 'kt', 'audit']);
    assert.equal(audit.code, 0, audit.stderr);
    const [report] = jsonLines(audit.stdout);
    assert.equal(report!.ok, true);
    assert.equal(report!.size, await logSize());
    assert.ok(Number(report!.size) >= 5);
  });

  it('a tampered inclusion proof makes the CLI warn, naming the user, and the key is not used', async () => {
    const erin = await registered('erin');
    // erin stays connected: what is pushed may be processed before receive() is called, so listen.
    const heard: string[] = [];
    erin.on('message', (m) => heard.push(m.text));
    await registered('frank'); // erin's leaf has a right-hand sibling in the tree
    // dana accepts the current head first, so what fails below is the inclusion proof, not consistency.
    assert.equal((await cli('dana', ['kt', 'audit'])).code, 0);
    const index = await entryIndexOf('erin@localhost');
    const sibling = index ^ 1;
    const { rows } = await db.query<{ leaf_hash: Buffer }>('select leaf_hash from ktlog.entries where index = $1', [
      sibling,
    ]);
    const original = rows[0]!.leaf_hash;
    const tampered = Buffer.from(original);
    tampered[0] = tampered[0]! ^ 0xff;
    await db.query('update ktlog.entries set leaf_hash = $1 where index = $2', [tampered, sibling]);
    try {
      const send = await cli('dana', ['send', 'erin', 'sent despite a tampered proof']);
      assert.equal(send.code, 1, send.stdout);
      assert.match(send.stderr, /key transparency/);
      assert.match(send.stderr, /erin@localhost/);
      assert.match(send.stderr, /proof of log entry \d+ .* does not verify/);
      const lookup = await cli('dana', ['--json', 'kt', 'lookup', 'erin']);
      assert.equal(lookup.code, 1);
      assert.match(lookup.stderr, /key transparency: not using the keys of erin@localhost/);
      assert.equal(lookup.stdout, '');
      // Nothing reached erin: no Welcome, no message.
      await erin.receive();
      assert.deepEqual(heard, []);
    } finally {
      await db.query('update ktlog.entries set leaf_hash = $1 where index = $2', [original, sibling]);
    }
    const send = await cli('dana', ['send', 'erin', 'after the proof is whole again']);
    assert.equal(send.code, 0, send.stderr);
    await waitFor('erin gets the message', async () => {
      await erin.receive();
      return heard.length > 0 ? true : undefined;
    });
    assert.deepEqual(heard, ['after the proof is whole again']);
  });

  it('a signed tree head that forks from the one the CLI kept makes it warn, and kt audit fail', async () => {
    // dana's store keeps the newest head it accepted; a new account makes the log grow past it.
    const kept = await logSize();
    await registered('gus');
    const size = await waitFor('the log to grow', async () => {
      const now = await logSize();
      return now > kept ? now : undefined;
    });
    const { rows } = await db.query<{ root_hash: Buffer; timestamp_ms: string; signature: Buffer }>(
      'select root_hash, timestamp_ms, signature from ktlog.tree_heads where tree_size = $1',
      [size],
    );
    const real = rows[0]!;
    // The server signs, with its real key, a head of the same size over a tree that is not an extension
    // of the one dana saw: a forked view of the log.
    const { rows: keys } = await db.query<{ private_key_pem: string }>(
      "select private_key_pem from ktlog.signing_keys where name = 'tree-head'",
    );
    const forged = signTreeHead(createPrivateKey(keys[0]!.private_key_pem), {
      treeSize: size,
      rootHash: randomBytes(32),
      timestampMs: Date.now(),
    });
    await db.query(
      'update ktlog.tree_heads set root_hash = $1, timestamp_ms = $2, signature = $3 where tree_size = $4',
      [Buffer.from(forged.rootHash), forged.timestampMs.toString(), Buffer.from(forged.signature), size],
    );
    try {
      const send = await cli('dana', ['send', 'gus', 'sent into a forked log']);
      assert.equal(send.code, 1, send.stdout);
      assert.match(send.stderr, /key transparency: not using the keys of gus@localhost/);
      assert.match(send.stderr, new RegExp(`tree head of size ${size} is not consistent with the head of size`));
      const audit = await cli('dana', ['--json', 'kt', 'audit']);
      assert.equal(audit.code, 1, 'kt audit exits non-zero');
      const [report] = jsonLines(audit.stdout);
      assert.equal(report!.ok, false);
      assert.equal(report!.size, size);
      assert.ok((report!.problems as string[]).some((p) => /not consistent/.test(p)));
      assert.ok((report!.problems as string[]).some((p) => /not to the signed root/.test(p)));
    } finally {
      await db.query(
        'update ktlog.tree_heads set root_hash = $1, timestamp_ms = $2, signature = $3 where tree_size = $4',
        [real.root_hash, real.timestamp_ms, real.signature, size],
      );
    }
    const audit = await cli('dana', ['--json', 'kt', 'audit']);
    assert.equal(audit.code, 0, audit.stdout + audit.stderr);
    assert.equal(jsonLines(audit.stdout)[0]!.ok, true);
    const send = await cli('dana', ['send', 'gus', 'the log is whole again']);
    assert.equal(send.code, 0, send.stderr);
  });

  it('a key of dana put in the log behind her back makes her next command warn her', async () => {
    // What a server posing as dana to others would have to do: log a device key of its own for her.
    const nc = await connect({ servers: net.nats.url });
    try {
      const event: DeviceEvent = {
        eventId: randomUUID(),
        op: DeviceEvent_Op.OP_ADD,
        accountId: randomUUID(),
        username: 'dana',
        address: 'dana@localhost',
        deviceId: randomUUID(),
        identityKey: new Uint8Array(randomBytes(32)),
        atMs: BigInt(Date.now()),
      };
      await nc.jetstream().publish('qpq.devices.add', DeviceEvent.encode(event).finish());
      await waitFor('the rogue key in the log', async () => {
        const { rows } = await db.query('select 1 from ktlog.entries where device_id = $1', [event.deviceId]);
        return rows.length > 0 ? true : undefined;
      });
      const recv = await cli('dana', ['recv']);
      assert.equal(recv.code, 0, recv.stderr);
      assert.match(
        recv.stderr,
        new RegExp(
          `qpq: warning: key transparency: the log holds a key of your account for device ${event.deviceId}, which is not one of your devices — someone may be posing as you \\(dana@localhost\\)`,
        ),
      );
      // Others who look dana up are not warned by this (auth does not list the device to them either),
      // but the entry is there for every auditor: kt lookup shows it.
      const lookup = await cli('bob', ['--json', 'kt', 'lookup', 'dana']);
      assert.ok(jsonLines(lookup.stdout).some((l) => l.device === event.deviceId));
    } finally {
      await nc.close();
    }
  });

  it('ktlog killed while devices register loses and duplicates no entry', async () => {
    const names = Array.from({ length: 24 }, (_, i) => `kill${i}`);
    const devices = new Map<string, string>();
    let killed = false;
    const registering = (async () => {
      for (let i = 0; i < names.length; i += 4) {
        await Promise.all(
          names.slice(i, i + 4).map(async (name) => {
            const key = new Uint8Array(randomBytes(32));
            devices.set(await registerByHandAndLogin(name, key), Buffer.from(key).toString('hex'));
          }),
        );
        if (i === 8) {
          await net.killService('ktlog');
          killed = true;
        }
      }
    })();
    await waitFor('ktlog killed', async () => (killed ? true : undefined), 60_000);
    await new Promise((r) => setTimeout(r, 500));
    await net.startService('ktlog');
    await registering;
    const logged = await waitFor(
      'every device in the log',
      async () => {
        const { rows } = await db.query<{ device_id: string; identity_key: Buffer; n: string }>(
          `select device_id, identity_key, count(*) as n from ktlog.entries
           where address like 'kill%@localhost' and op = 1 group by device_id, identity_key`,
        );
        return rows.length >= names.length ? rows : undefined;
      },
      20_000,
    );
    assert.equal(logged.length, names.length);
    for (const row of logged) {
      assert.equal(Number(row.n), 1, `device ${row.device_id} appended once`);
      assert.equal(devices.get(row.device_id), row.identity_key.toString('hex'), 'with the key it registered');
    }
    const { rows } = await db.query<{ entries: string; first: string; last: string }>(
      'select count(*) as entries, min(index) as first, max(index) as last from ktlog.entries',
    );
    assert.equal(Number(rows[0]!.first), 0);
    assert.equal(Number(rows[0]!.last) + 1, Number(rows[0]!.entries), 'indices without gaps');
    await waitFor('a head over every entry', async () =>
      (await logSize()) === Number(rows[0]!.entries) ? true : undefined,
    );
    const audit = await cli('dana', ['--json', 'kt', 'audit']);
    assert.equal(audit.code, 0, audit.stdout + audit.stderr);
    assert.equal(jsonLines(audit.stdout)[0]!.size, Number(rows[0]!.entries));
  });
});

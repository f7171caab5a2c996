import { createCipheriv, createDecipheriv, randomBytes, scrypt as scryptCb } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PassphraseRequiredError, StoreError } from './errors.js';
import { FileLock } from './store-lock.js';
import { STORE_VERSION, emptyDocument, type StoreDocument } from './store-document.js';

const scrypt = promisify(scryptCb) as (
  password: string,
  salt: Buffer,
  keylen: number,
  options: { N: number; r: number; p: number; maxmem: number },
) => Promise<Buffer>;

/** File names inside a data dir. */
export const STORE_FILES = {
  document: 'store.enc',
  key: 'store.key',
  passphrase: 'store.passphrase.json',
  lock: 'lock',
} as const;

const MAGIC = Buffer.from('QPQS', 'ascii');
const FORMAT = 1;
const HEADER = Buffer.concat([MAGIC, Buffer.from([FORMAT])]);
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;

interface PassphraseMarker {
  kdf: 'scrypt';
  salt: string;
  N: number;
  r: number;
  p: number;
}

export interface StoreOptions {
  /** Where QPQ_PASSPHRASE is read from; process.env by default. */
  env?: NodeJS.ProcessEnv;
  /** How long to wait for another process's lock. */
  lockTimeoutMs?: number;
  /** scrypt cost for new passphrase-protected stores (tests lower it). */
  scryptN?: number;
}

/**
 * The encrypted local store of one data dir: a single JSON document (account, device keys, KeyPackage
 * private parts, MLS group states, history, mailbox cursor, outbox) sealed with AES-256-GCM and
 * replaced atomically (temp file, fsync, rename, fsync of the dir).
 *
 * The key is 32 random bytes in `store.key` (mode 0600), or — when QPQ_PASSPHRASE is set as the store
 * is created — derived with scrypt from that passphrase, with the salt in `store.passphrase.json`.
 *
 * Every change is `update(fn)`: lock the dir, re-read the document if another process replaced it,
 * apply fn, write. So several qpq processes on one data dir never lose each other's changes, and MLS
 * state is never advanced twice from the same starting point.
 */
export class LocalStore {
  private key: Buffer | undefined;
  private cached: StoreDocument | undefined;
  private cachedStamp: string | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly lock: FileLock;

  private constructor(
    readonly dataDir: string,
    private readonly opts: StoreOptions,
  ) {
    this.lock = new FileLock(join(dataDir, STORE_FILES.lock));
  }

  /** Opens the store of `dataDir`, creating the directory (and its parents, mode 0700) if missing. */
  static async open(dataDir: string, opts: StoreOptions = {}): Promise<LocalStore> {
    try {
      if (!existsSync(dataDir)) {
        mkdirSync(dataDir, { recursive: true, mode: 0o700 });
        chmodSync(dataDir, 0o700);
      }
    } catch (err) {
      throw new StoreError(`cannot create the data dir ${dataDir}: ${(err as Error).message}`, undefined, {
        cause: err,
      });
    }
    const store = new LocalStore(dataDir, opts);
    if (store.exists()) await store.loadKey();
    return store;
  }

  /** Whether this data dir holds a store yet (it is created by the first register or login). */
  exists(): boolean {
    return existsSync(this.path(STORE_FILES.document));
  }

  /** Whether the key comes from QPQ_PASSPHRASE. */
  get passphraseProtected(): boolean {
    return existsSync(this.path(STORE_FILES.passphrase));
  }

  /** The current document (an empty one before the store exists). Do not mutate it: use update(). */
  async read(): Promise<StoreDocument> {
    if (!this.exists()) return emptyDocument();
    return this.load();
  }

  /**
   * Applies `fn` to the latest document under the data dir's lock and writes the result before
   * returning fn's value. If fn throws, nothing is written. The first update creates the store.
   */
  update<T>(fn: (doc: StoreDocument) => T | Promise<T>): Promise<T> {
    const run = this.queue.then(() => this.updateLocked(fn));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async updateLocked<T>(fn: (doc: StoreDocument) => T | Promise<T>): Promise<T> {
    const release = await this.lock.acquire({ timeoutMs: this.opts.lockTimeoutMs ?? 15_000 });
    try {
      let doc: StoreDocument;
      if (this.exists()) {
        if (!this.key) await this.loadKey();
        doc = this.load();
      } else {
        if (!this.key) this.key = await this.createKey();
        doc = emptyDocument();
      }
      try {
        const result = await fn(doc);
        this.write(doc);
        return result;
      } catch (err) {
        // fn may have half-changed the cached object, or the write failed: forget it so the next
        // read comes from disk.
        this.cached = undefined;
        this.cachedStamp = undefined;
        throw err;
      }
    } finally {
      release();
    }
  }

  private path(name: string): string {
    return join(this.dataDir, name);
  }

  private env(): NodeJS.ProcessEnv {
    return this.opts.env ?? process.env;
  }

  private async createKey(): Promise<Buffer> {
    const passphrase = this.env().QPQ_PASSPHRASE;
    // Left over from a creation that never wrote a document: the new store decides afresh.
    for (const name of [STORE_FILES.key, STORE_FILES.passphrase]) {
      try {
        unlinkSync(this.path(name));
      } catch {
        // not there
      }
    }
    if (passphrase) {
      const marker: PassphraseMarker = {
        kdf: 'scrypt',
        salt: randomBytes(16).toString('base64'),
        N: this.opts.scryptN ?? 1 << 15,
        r: 8,
        p: 1,
      };
      writeFileAtomic(this.path(STORE_FILES.passphrase), Buffer.from(JSON.stringify(marker) + '\n'), 0o600);
      return deriveKey(passphrase, marker);
    }
    const key = randomBytes(KEY_BYTES);
    writeFileAtomic(this.path(STORE_FILES.key), key, 0o600);
    return key;
  }

  private async loadKey(): Promise<void> {
    const markerPath = this.path(STORE_FILES.passphrase);
    if (existsSync(markerPath)) {
      const passphrase = this.env().QPQ_PASSPHRASE;
      if (!passphrase) throw new PassphraseRequiredError();
      let marker: PassphraseMarker;
      try {
        marker = JSON.parse(readFileSync(markerPath, 'utf8')) as PassphraseMarker;
      } catch (err) {
        throw new StoreError(`cannot read ${markerPath}: ${(err as Error).message}`, undefined, { cause: err });
      }
      this.key = await deriveKey(passphrase, marker);
      // Check now, so a wrong passphrase is reported as such rather than as a damaged store.
      try {
        this.load();
      } catch (err) {
        this.key = undefined;
        if (err instanceof StoreError && err.message.startsWith('cannot decrypt'))
          throw new StoreError('wrong QPQ_PASSPHRASE for this data dir', undefined, { cause: err });
        throw err;
      }
      return;
    }
    const keyPath = this.path(STORE_FILES.key);
    let key: Buffer;
    try {
      key = readFileSync(keyPath);
    } catch (err) {
      throw new StoreError(`the local store's key ${keyPath} is missing or unreadable`, undefined, { cause: err });
    }
    if (key.length !== KEY_BYTES) throw new StoreError(`the local store's key ${keyPath} is damaged`);
    this.key = key;
  }

  private stamp(): string {
    const st = statSync(this.path(STORE_FILES.document), { bigint: true });
    return `${st.ino}:${st.size}:${st.mtimeNs}`;
  }

  /** The document on disk, reusing the parsed copy while the file is the one we last read or wrote. */
  private load(): StoreDocument {
    const stamp = this.stamp();
    if (this.cached && this.cachedStamp === stamp) return this.cached;
    const file = this.path(STORE_FILES.document);
    const sealed = readFileSync(file);
    const plain = open(sealed, this.key!, file);
    let doc: StoreDocument;
    try {
      doc = JSON.parse(plain.toString('utf8')) as StoreDocument;
    } catch (err) {
      throw new StoreError(`the local store ${file} is damaged`, undefined, { cause: err });
    }
    if (doc.version !== STORE_VERSION) {
      throw new StoreError(`the local store ${file} has version ${doc.version}; this qpq reads ${STORE_VERSION}`);
    }
    this.cached = doc;
    this.cachedStamp = stamp;
    return doc;
  }

  private write(doc: StoreDocument): void {
    const sealed = seal(Buffer.from(JSON.stringify(doc), 'utf8'), this.key!);
    writeFileAtomic(this.path(STORE_FILES.document), sealed, 0o600);
    this.cached = doc;
    this.cachedStamp = this.stamp();
  }
}

async function deriveKey(passphrase: string, marker: PassphraseMarker): Promise<Buffer> {
  return scrypt(passphrase, Buffer.from(marker.salt, 'base64'), KEY_BYTES, {
    N: marker.N,
    r: marker.r,
    p: marker.p,
    maxmem: 256 * marker.N * marker.r + 1024 * 1024,
  });
}

/** header ‖ iv ‖ tag ‖ ciphertext; the header is authenticated as associated data. */
export function seal(plain: Buffer, key: Buffer): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(HEADER);
  const body = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([HEADER, iv, cipher.getAuthTag(), body]);
}

export function open(sealed: Buffer, key: Buffer, file = 'the local store'): Buffer {
  const min = HEADER.length + IV_BYTES + TAG_BYTES;
  if (sealed.length < min || !sealed.subarray(0, HEADER.length).equals(HEADER)) {
    throw new StoreError(`${file} is not a qpq store or is damaged`);
  }
  const iv = sealed.subarray(HEADER.length, HEADER.length + IV_BYTES);
  const tag = sealed.subarray(HEADER.length + IV_BYTES, min);
  const decipher = createDecipheriv('aes-256-gcm', key, iv);
  decipher.setAAD(HEADER);
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([decipher.update(sealed.subarray(min)), decipher.final()]);
  } catch (err) {
    throw new StoreError(`cannot decrypt ${file}: wrong key or damaged file`, undefined, { cause: err });
  }
}

/** Replaces `path` so that a crash leaves either the old or the new content, never a mix. */
export function writeFileAtomic(path: string, data: Uint8Array, mode: number): void {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fd = openSync(tmp, 'wx', mode);
  try {
    let off = 0;
    while (off < data.byteLength) off += writeSync(fd, data, off, data.byteLength - off);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(tmp);
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (err) {
    unlinkSync(tmp);
    throw err;
  }
  // The rename itself must reach the disk too.
  const dirFd = openSync(join(path, '..'), 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}

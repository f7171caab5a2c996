import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fileRecord } from './file-ref.js';

const ref = (over: Partial<Parameters<typeof fileRecord>[0]> = {}) => ({
  blobId: 'ab'.repeat(32),
  key: new Uint8Array(32).fill(7),
  size: 1234n,
  name: 'photo.jpg',
  mediaType: 'image/jpeg',
  replyTo: '',
  ...over,
});

describe('fileRecord (a FileRef from a peer, as stored)', () => {
  it('keeps a well-formed reference', () => {
    assert.deepEqual(fileRecord(ref()), {
      blobId: 'ab'.repeat(32),
      key: Buffer.alloc(32, 7).toString('base64'),
      size: 1234,
      name: 'photo.jpg',
      mediaType: 'image/jpeg',
    });
  });

  it('refuses what cannot be fetched or decrypted', () => {
    assert.equal(fileRecord(ref({ blobId: 'AB'.repeat(32) })), undefined);
    assert.equal(fileRecord(ref({ blobId: 'ab'.repeat(31) })), undefined);
    assert.equal(fileRecord(ref({ blobId: '../' + 'a'.repeat(61) })), undefined);
    assert.equal(fileRecord(ref({ key: new Uint8Array(16) })), undefined);
  });

  it('keeps only the last part of a name, so a download cannot leave its folder', () => {
    assert.equal(fileRecord(ref({ name: '../../etc/passwd' }))?.name, 'passwd');
    assert.equal(fileRecord(ref({ name: '..\\..\\boot.ini' }))?.name, 'boot.ini');
    assert.equal(fileRecord(ref({ name: '..' }))?.name, 'file');
    assert.equal(fileRecord(ref({ name: '' }))?.name, 'file');
    assert.equal(fileRecord(ref({ name: 'a\u0000b\u001b[2Jc.txt' }))?.name, 'ab[2Jc.txt');
    assert.equal(fileRecord(ref({ name: 'x'.repeat(300) }))?.name.length, 255);
    assert.equal(fileRecord(ref({ mediaType: '' }))?.mediaType, 'application/octet-stream');
  });
});

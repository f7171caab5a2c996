// A file as a message names it (e2e.proto FileRef) and as the store keeps it (FileRecord).
import { FILE_KEY_BYTES } from '@qpq/crypto';
import type { FileRef } from '@qpq/proto';
import { basename } from 'node:path';
import type { FileRecord } from './store-document.js';

const MAX_FILE_NAME_LENGTH = 255;

/**
 * A FileRef as stored, or undefined for one that cannot be fetched (a malformed id or key). The name
 * is the sender's word: only its last path part is kept, so a download never writes outside the
 * folder it was asked to.
 */
export function fileRecord(ref: FileRef): FileRecord | undefined {
  if (!/^[0-9a-f]{64}$/.test(ref.blobId) || ref.key.length !== FILE_KEY_BYTES) return undefined;
  const name =
    basename(ref.name.replace(/\\/g, '/'))
      // eslint-disable-next-line no-control-regex -- control characters are what is removed
      .replace(/[\u0000-\u001f\u007f]/g, '')
      .slice(0, MAX_FILE_NAME_LENGTH) || 'file';
  return {
    blobId: ref.blobId,
    key: Buffer.from(ref.key).toString('base64'),
    size: Number(ref.size),
    name: name === '.' || name === '..' ? 'file' : name,
    mediaType: ref.mediaType || 'application/octet-stream',
  };
}

// What the delivery service may read of an MLS message without any keys (RFC 9420 §6): the wire format,
// and for group messages the group id, epoch and content type it needs to order commits per group.
import { copyBytes } from './bytes.js';
import { CryptoFormatError } from './errors.js';
import { decodeMlsMessageExact } from './mls-message.js';

export interface Framing {
  wireFormat: 'public' | 'private' | 'welcome' | 'key_package' | 'group_info';
  groupId?: Uint8Array;
  epoch?: bigint;
  contentType?: 'application' | 'proposal' | 'commit';
}

/**
 * Decodes the whole message (so malformed or trailing bytes are refused) and returns its cleartext
 * framing. A Welcome carries no readable group id: route it by the KeyPackageRef of its recipients.
 */
export function peekFraming(bytes: Uint8Array): Framing {
  const message = decodeMlsMessageExact(bytes);
  switch (message.wireformat) {
    case 'mls_private_message': {
      const { groupId, epoch, contentType } = message.privateMessage;
      return { wireFormat: 'private', groupId: copyBytes(groupId), epoch, contentType: knownContentType(contentType) };
    }
    case 'mls_public_message': {
      const { groupId, epoch, contentType } = message.publicMessage.content;
      return { wireFormat: 'public', groupId: copyBytes(groupId), epoch, contentType: knownContentType(contentType) };
    }
    case 'mls_welcome':
      return { wireFormat: 'welcome' };
    case 'mls_key_package':
      return { wireFormat: 'key_package' };
    case 'mls_group_info': {
      const { groupId, epoch } = message.groupInfo.groupContext;
      return { wireFormat: 'group_info', groupId: copyBytes(groupId), epoch };
    }
    default:
      throw new CryptoFormatError('unknown MLS wire format');
  }
}

function knownContentType(contentType: string): 'application' | 'proposal' | 'commit' {
  if (contentType === 'application' || contentType === 'proposal' || contentType === 'commit') return contentType;
  throw new CryptoFormatError(`unknown MLS content type ${contentType}`);
}

// The ts-mls ClientConfig every group state runs with. It is not part of the serialized state, so
// group.ts attaches it again each time a state is decoded.
import {
  type AuthenticationService,
  type ClientConfig,
  type Credential,
  defaultKeyPackageEqualityConfig,
  defaultKeyRetentionConfig,
  defaultLifetimeConfig,
  defaultPaddingConfig,
} from 'ts-mls';
import { decodeUtf8 } from './bytes.js';
import { parseDeviceIdentity } from './identity.js';

/**
 * The identity of a basic credential naming a device ("user@domain/deviceId"), or undefined for any
 * other credential. Binding that identity to its signature key is the job of key transparency, above
 * this layer; here we only refuse credentials that name no device.
 */
export function credentialIdentity(credential: Credential): string | undefined {
  if (credential.credentialType !== 'basic') return undefined;
  try {
    const identity = decodeUtf8(credential.identity, 'credential identity');
    parseDeviceIdentity(identity);
    return identity;
  } catch {
    return undefined;
  }
}

const deviceCredentialsOnly: AuthenticationService = {
  async validateCredential(credential) {
    return credentialIdentity(credential) !== undefined;
  },
};

export const clientConfig: ClientConfig = {
  keyRetentionConfig: defaultKeyRetentionConfig,
  lifetimeConfig: defaultLifetimeConfig,
  keyPackageEqualityConfig: defaultKeyPackageEqualityConfig,
  paddingConfig: defaultPaddingConfig,
  authService: deviceCredentialsOnly,
};

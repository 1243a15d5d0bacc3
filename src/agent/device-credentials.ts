import type { KeyObject } from 'node:crypto';
import type { KeyAgreement } from '../crypto/ecies.js';
import type { CallbackSigner } from '../protocol/envelope.js';

/** What an individualized device signs and unwraps with. */
export interface DeviceCredentials {
  /** Device id from the certificate. */
  readonly deviceId: string;
  /** Device public key. */
  readonly publicKey: KeyObject;
  /** Signs envelopes with the device key and chain [device cert, ...issuing CAs]. */
  readonly signer: CallbackSigner;
  /** ECDH with the device key (ECIES unwrap). */
  readonly keyAgreement: KeyAgreement;
}

import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { kwError } from '../errors/index.js';

/** The only curve keywarden uses: NIST P-256 (secp256r1, "prime256v1" in OpenSSL). */
export const P256 = 'prime256v1';

/** A P-256 key pair. */
export interface EcKeyPair {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

/** Generates a fresh P-256 key pair. */
export function generateP256KeyPair(): EcKeyPair {
  return generateKeyPairSync('ec', { namedCurve: P256 });
}

/**
 * Signs `data` with ECDSA P-256 / SHA-256. The signature is the DER Ecdsa-Sig-Value
 * (RFC 3279 §2.2.3), the form X.509 and the envelope use.
 */
export function signP256(privateKey: KeyObject, data: Uint8Array): Uint8Array {
  return new Uint8Array(sign('sha256', data, { key: privateKey, dsaEncoding: 'der' }));
}

/** Verifies a DER ECDSA P-256 / SHA-256 signature; false (never a throw) on any mismatch. */
export function verifyP256(publicKey: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  try {
    return verify('sha256', data, { key: publicKey, dsaEncoding: 'der' }, signature);
  } catch {
    // OpenSSL rejects malformed DER by throwing; to a verifier that is just "invalid".
    return false;
  }
}

/** True when `key` is an EC key on P-256. */
export function isP256Key(key: KeyObject): boolean {
  return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === P256;
}

/** Parses a SubjectPublicKeyInfo DER (RFC 5280 §4.1.2.7) holding a P-256 key. */
export function publicKeyFromSpki(spki: Uint8Array): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch (err) {
    throw kwError('DECODE_FAILED', 'not a SubjectPublicKeyInfo public key', {}, err);
  }
  if (!isP256Key(key)) throw kwError('DECODE_FAILED', 'public key is not on P-256');
  return key;
}

/** Serializes a public key as SubjectPublicKeyInfo DER. */
export function spkiOf(key: KeyObject): Uint8Array {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return new Uint8Array(pub.export({ format: 'der', type: 'spki' }));
}

/** Parses a PKCS#8 DER private key on P-256. */
export function privateKeyFromPkcs8(der: Uint8Array): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8' });
  } catch (err) {
    throw kwError('DECODE_FAILED', 'not a PKCS#8 private key', {}, err);
  }
  if (!isP256Key(key)) throw kwError('DECODE_FAILED', 'private key is not on P-256');
  return key;
}

/** Serializes a private key as PKCS#8 DER. Callers must wipe the result when done. */
export function pkcs8Of(key: KeyObject): Uint8Array {
  return new Uint8Array(key.export({ format: 'der', type: 'pkcs8' }));
}

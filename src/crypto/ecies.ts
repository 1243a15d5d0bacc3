import {
  createPublicKey,
  createECDH,
  diffieHellman,
  hkdfSync,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { kwError } from '../errors/index.js';
import { GCM_IV_BYTES, GCM_TAG_BYTES, gcmOpen, gcmSeal } from './aead.js';
import { isP256Key, P256 } from './ecdsa.js';

/**
 * ECIES over P-256 (SEC 1 v2 §5.1, with HKDF instead of the ANSI X9.63 KDF):
 *
 *   blob = version(1) = 0x01
 *        | ephemeral public key, uncompressed point (65: 0x04 | X | Y, SEC 1 §2.3.3)
 *        | IV (12)
 *        | ciphertext (len(plaintext))
 *        | GCM tag (16)
 *
 *   Z    = ECDH(ephemeral private, recipient public), the x-coordinate (SEC 1 §3.3.1)
 *   K    = HKDF-SHA256(IKM = Z, salt = ephemeral point, info = "keywarden/v1 ecies", L = 32)
 *          (RFC 5869 §2)
 *   AAD  = version | ephemeral point | UTF-8(context)
 *
 * The context names what the blob protects (key id, license id; src/protocol/key-wrap.ts),
 * so a wrapped key cannot be lifted into another slot or license.
 */
export const ECIES_VERSION = 0x01;
/** Uncompressed P-256 point length. */
export const P256_POINT_BYTES = 65;
/** DER length of a P-256 SubjectPublicKeyInfo with an uncompressed point. */
const P256_SPKI_BYTES = 91;
/** Smallest possible ECIES blob (empty plaintext). */
export const ECIES_OVERHEAD = 1 + P256_POINT_BYTES + GCM_IV_BYTES + GCM_TAG_BYTES;
const HKDF_INFO = Buffer.from('keywarden/v1 ecies', 'utf8');

/** Computes the ECDH shared secret with a peer's public key; implemented by key vaults. */
export interface KeyAgreement {
  /** Raw ECDH x-coordinate (32 bytes) between our private key and `peer`. */
  deriveSharedSecret(peer: KeyObject): Uint8Array;
}

/**
 * Encodes a P-256 public key as an uncompressed point: the last 65 bytes of its SPKI DER.
 * Not via a JWK export: on Node 20, exporting a freshly generated EC key as JWK can
 * deadlock the thread when a GC runs during the export (the key generation job's
 * finalizer takes the key's mutex, which the JWK export holds).
 */
export function publicPoint(key: KeyObject): Uint8Array {
  const spki = key.export({ format: 'der', type: 'spki' });
  const point = spki.subarray(spki.length - P256_POINT_BYTES);
  if (spki.length !== P256_SPKI_BYTES || point[0] !== 4)
    throw kwError('KEY_UNWRAP_FAILED', 'not an uncompressed P-256 public key');
  return new Uint8Array(point);
}

/** Decodes an uncompressed P-256 point; OpenSSL rejects points not on the curve. */
export function publicKeyFromPoint(point: Uint8Array): KeyObject {
  if (point.length !== P256_POINT_BYTES || point[0] !== 4) {
    throw kwError('KEY_UNWRAP_FAILED', 'the ephemeral key is not an uncompressed P-256 point');
  }
  const x = Buffer.from(point.subarray(1, 33)).toString('base64url');
  const y = Buffer.from(point.subarray(33, 65)).toString('base64url');
  try {
    return createPublicKey({ key: { kty: 'EC', crv: 'P-256', x, y }, format: 'jwk' });
  } catch (err) {
    throw kwError('KEY_UNWRAP_FAILED', 'the ephemeral key is not on P-256', {}, err);
  }
}

function deriveKey(shared: Uint8Array, point: Uint8Array): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', shared, point, HKDF_INFO, 32));
}

function aadOf(point: Uint8Array, context: string): Uint8Array {
  return Buffer.concat([Uint8Array.of(ECIES_VERSION), point, Buffer.from(context, 'utf8')]);
}

/** Recipients' points: exporting a KeyObject costs as much as the ECDH itself. */
const POINTS = new WeakMap<KeyObject, Uint8Array>();

function recipientPoint(recipient: KeyObject): Uint8Array {
  let point = POINTS.get(recipient);
  if (!point) POINTS.set(recipient, (point = publicPoint(recipient)));
  return point;
}

/** Wraps `plaintext` to `recipient` (a P-256 public key), bound to `context`. */
export function eciesWrap(
  recipient: KeyObject,
  plaintext: Uint8Array,
  context: string,
): Uint8Array {
  if (!isP256Key(recipient)) throw kwError('KEY_UNWRAP_FAILED', 'the recipient key is not P-256');
  // The ephemeral key through the ECDH object: its public point comes out directly, with no
  // KeyObject export (and no key-generation job whose finalizer could meet an export).
  const eph = createECDH(P256);
  const point = new Uint8Array(eph.generateKeys());
  const key = deriveKey(eph.computeSecret(recipientPoint(recipient)), point);
  const iv = randomBytes(GCM_IV_BYTES);
  const { ciphertext, tag } = gcmSeal(key, iv, plaintext, aadOf(point, context));
  key.fill(0);
  return Buffer.concat([Uint8Array.of(ECIES_VERSION), point, iv, ciphertext, tag]);
}

/** An agreement from an in-memory private key. */
export function agreementOf(privateKey: KeyObject): KeyAgreement {
  return { deriveSharedSecret: (peer) => diffieHellman({ privateKey, publicKey: peer }) };
}

/**
 * Unwraps an {@link eciesWrap} blob with the recipient's private key (or a vault's key
 * agreement). A wrong key, a wrong context or any altered byte is KEY_UNWRAP_FAILED.
 */
export function eciesUnwrap(
  recipient: KeyObject | KeyAgreement,
  blob: Uint8Array,
  context: string,
): Uint8Array {
  if (blob.length < ECIES_OVERHEAD || blob[0] !== ECIES_VERSION) {
    throw kwError('KEY_UNWRAP_FAILED', 'the wrapped key is truncated or of an unknown version');
  }
  const point = blob.subarray(1, 1 + P256_POINT_BYTES);
  const ivEnd = 1 + P256_POINT_BYTES + GCM_IV_BYTES;
  const agreement = 'deriveSharedSecret' in recipient ? recipient : agreementOf(recipient);
  let shared: Uint8Array;
  try {
    shared = agreement.deriveSharedSecret(publicKeyFromPoint(point));
  } catch (err) {
    throw kwError('KEY_UNWRAP_FAILED', 'key agreement failed', {}, err);
  }
  const key = deriveKey(shared, point);
  const out = gcmOpen(
    key,
    blob.subarray(1 + P256_POINT_BYTES, ivEnd),
    blob.subarray(ivEnd, blob.length - GCM_TAG_BYTES),
    blob.subarray(blob.length - GCM_TAG_BYTES),
    aadOf(point, context),
  );
  key.fill(0);
  if (!out)
    throw kwError('KEY_UNWRAP_FAILED', 'the wrapped key is not for this key, or was altered');
  return out;
}

import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { kwError } from '../errors/index.js';

/** Format version of an AEAD blob. */
export const AEAD_VERSION = 0x01;
/** AES-GCM IV length (NIST SP 800-38D §8.2.1: 96-bit random IVs). */
export const GCM_IV_BYTES = 12;
/** AES-GCM tag length (full 128 bits). */
export const GCM_TAG_BYTES = 16;

/** AES-256-GCM encryption of `plaintext`; returns ciphertext and tag separately. */
export function gcmSeal(
  key: Uint8Array,
  iv: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
): { ciphertext: Uint8Array; tag: Uint8Array } {
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: GCM_TAG_BYTES });
  cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { ciphertext, tag: cipher.getAuthTag() };
}

/** AES-256-GCM decryption; null when the tag does not verify (wrong key, altered data). */
export function gcmOpen(
  key: Uint8Array,
  iv: Uint8Array,
  ciphertext: Uint8Array,
  tag: Uint8Array,
  aad: Uint8Array,
): Uint8Array | null {
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: GCM_TAG_BYTES });
    decipher.setAAD(aad);
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  } catch {
    // final() throws on a tag mismatch; callers turn null into their own coded error.
    return null;
  }
}

/**
 * Wraps `plaintext` under a 32-byte key: `version(1) | iv(12) | ciphertext | tag(16)`, with
 * the context string (what the blob protects) as AAD so a blob cannot be moved to another
 * slot. Used for leaf keys under a root key and for the key vault at rest.
 */
export function aeadWrap(key: Uint8Array, plaintext: Uint8Array, context: string): Uint8Array {
  const iv = randomBytes(GCM_IV_BYTES);
  const header = Uint8Array.of(AEAD_VERSION);
  const aad = Buffer.concat([header, Buffer.from(context, 'utf8')]);
  const { ciphertext, tag } = gcmSeal(key, iv, plaintext, aad);
  return Buffer.concat([header, iv, ciphertext, tag]);
}

/** Opens an {@link aeadWrap} blob; KEY_UNWRAP_FAILED on a wrong key, context or altered blob. */
export function aeadUnwrap(key: Uint8Array, blob: Uint8Array, context: string): Uint8Array {
  if (blob.length < 1 + GCM_IV_BYTES + GCM_TAG_BYTES || blob[0] !== AEAD_VERSION) {
    throw kwError('KEY_UNWRAP_FAILED', 'the wrapped key is truncated or of an unknown version');
  }
  const iv = blob.subarray(1, 1 + GCM_IV_BYTES);
  const ciphertext = blob.subarray(1 + GCM_IV_BYTES, blob.length - GCM_TAG_BYTES);
  const tag = blob.subarray(blob.length - GCM_TAG_BYTES);
  const aad = Buffer.concat([blob.subarray(0, 1), Buffer.from(context, 'utf8')]);
  const out = gcmOpen(key, iv, ciphertext, tag, aad);
  if (!out) throw kwError('KEY_UNWRAP_FAILED', 'the wrapped key does not open with this key');
  return out;
}

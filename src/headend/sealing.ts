import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { kwError } from '../errors/index.js';

/** What a sealed secret is for: each purpose has its own key derived from the master key. */
export type SealPurpose = 'pki' | 'content-key' | 'domain-key' | 'root-secret';

const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * Seals secrets at rest with AES-256-GCM under purpose keys derived from the master key
 * with HKDF-SHA256 (RFC 5869). The record's id is the associated data, so a sealed blob
 * moved to another row (another KID, another role) fails to open.
 * Layout: version (1) | iv (12) | tag (16) | ciphertext.
 */
export class KeySealer {
  private readonly keys = new Map<SealPurpose, Buffer>();

  private readonly master: Buffer;

  constructor(master: Buffer) {
    if (master.length !== 32) throw kwError('MASTER_KEY_MISSING', 'the master key is 32 bytes');
    // A private copy: the caller wipes its buffer once the sealer exists.
    this.master = Buffer.from(master);
  }

  /** The key-encryption key for `purpose`. */
  private keyFor(purpose: SealPurpose): Buffer {
    let key = this.keys.get(purpose);
    if (!key) {
      key = Buffer.from(hkdfSync('sha256', this.master, 'keywarden-headend', `kek:${purpose}`, 32));
      this.keys.set(purpose, key);
    }
    return key;
  }

  /** Encrypts `plain` for the record `id`. */
  seal(purpose: SealPurpose, id: string, plain: Uint8Array): Buffer {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.keyFor(purpose), iv);
    cipher.setAAD(Buffer.from(`${purpose}:${id}`));
    const body = Buffer.concat([cipher.update(plain), cipher.final()]);
    return Buffer.concat([Buffer.of(VERSION), iv, cipher.getAuthTag(), body]);
  }

  /** Decrypts a blob sealed for `id`; a wrong master key or a moved blob is a coded error. */
  open(purpose: SealPurpose, id: string, sealed: Uint8Array): Buffer {
    const blob = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
    if (blob.length < 1 + IV_BYTES + TAG_BYTES || blob[0] !== VERSION)
      throw kwError('STORE_FAILED', `sealed ${purpose} record ${id} is malformed`);
    const decipher = createDecipheriv(
      'aes-256-gcm',
      this.keyFor(purpose),
      blob.subarray(1, 1 + IV_BYTES),
    );
    decipher.setAAD(Buffer.from(`${purpose}:${id}`));
    decipher.setAuthTag(blob.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES));
    try {
      return Buffer.concat([
        decipher.update(blob.subarray(1 + IV_BYTES + TAG_BYTES)),
        decipher.final(),
      ]);
    } catch (err) {
      throw kwError(
        'MASTER_KEY_WRONG',
        `cannot open sealed ${purpose} record ${id}: wrong master key or tampered data`,
        { purpose, id },
        err,
      );
    }
  }
}

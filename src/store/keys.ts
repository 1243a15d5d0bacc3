import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { kwError } from '../errors/index.js';

/** Length of the storage key the caller passes (KeyVault.storageKey('license-store')). */
export const STORAGE_KEY_BYTES = 32;
/** Length of a license file tag (the file name, hex-encoded). */
export const FILE_TAG_BYTES = 16;
/** Length of the key identifier written in clear in every store file. */
export const KEY_ID_BYTES = 8;
/** Length of the random store identity. */
export const STORE_ID_BYTES = 16;

/**
 * The keys of one license store, each derived from the device-bound storage key with
 * HKDF-SHA256 (RFC 5869) under its own label, so that no key serves two purposes.
 */
export interface StoreKeys {
  /** AES-256-GCM key of the license files. */
  readonly license: Uint8Array;
  /** AES-256-GCM key of the index journal frames. */
  readonly index: Uint8Array;
  /** HMAC-SHA256 key of the anchor slots. */
  readonly anchor: Uint8Array;
  /** HMAC-SHA256 key of the file-backed rollback counter. */
  readonly counter: Uint8Array;
  /** HMAC-SHA256 key that turns a license id into its file name. */
  readonly name: Uint8Array;
  /** HMAC-SHA256 key of the store header. */
  readonly header: Uint8Array;
  /** AES-256 key of the state digest's per-entry PRF. */
  readonly digest: Uint8Array;
  /**
   * A public 8-byte fingerprint of the storage key, written in clear in every file so that a
   * file made under another key is told apart (STORE_FOREIGN_DEVICE) from an altered one.
   * It is an HMAC output, so it reveals nothing about the key.
   */
  readonly keyId: Uint8Array;
}

/** Derives the store keys; INITIALIZATION_FAILED when the storage key is not 32 bytes. */
export function deriveStoreKeys(storageKey: Uint8Array): StoreKeys {
  if (!(storageKey instanceof Uint8Array) || storageKey.length !== STORAGE_KEY_BYTES) {
    throw kwError('INITIALIZATION_FAILED', 'the license store needs a 32-byte storage key', {
      length: storageKey instanceof Uint8Array ? storageKey.length : undefined,
    });
  }
  const derive = (purpose: string): Uint8Array =>
    new Uint8Array(
      hkdfSync(
        'sha256',
        storageKey,
        new Uint8Array(0),
        `keywarden/v1 license-store ${purpose}`,
        32,
      ),
    );
  const header = derive('header');
  return {
    license: derive('license'),
    index: derive('index'),
    anchor: derive('anchor'),
    counter: derive('rollback-counter'),
    name: derive('file-name'),
    header,
    digest: derive('state-digest'),
    keyId: hmac(header, Buffer.from('key-id')).subarray(0, KEY_ID_BYTES),
  };
}

/** HMAC-SHA256 of the concatenated parts. */
export function hmac(key: Uint8Array, ...parts: Uint8Array[]): Buffer {
  const h = createHmac('sha256', key);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** Constant-time equality of two byte strings (false when the lengths differ). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The file tag of a license id: the first 16 bytes of HMAC(name key, id). The tag names the
 * license file, so the directory listing reveals no license ids, and it is bound into the
 * file's AAD, so a file renamed to another license's name fails to open.
 */
export function fileTagOf(keys: StoreKeys, id: string): Buffer {
  return hmac(keys.name, Buffer.from(id, 'utf8')).subarray(0, FILE_TAG_BYTES);
}

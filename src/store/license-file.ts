import { randomBytes } from 'node:crypto';
import { GCM_IV_BYTES, GCM_TAG_BYTES, gcmOpen, gcmSeal } from '../crypto/aead.js';
import { kwError } from '../errors/index.js';
import {
  FILE_TAG_BYTES,
  KEY_ID_BYTES,
  STORE_ID_BYTES,
  fileTagOf,
  sameBytes,
  type StoreKeys,
} from './keys.js';
import { deepFreeze, freezeUsage, isUsageState, type StoredLicense } from './types.js';

const MAGIC = 'KWLF';
const VERSION = 1;
/** magic(4) version(1) reserved(3) keyId(8) storeId(16) fileTag(16) iv(12). */
export const LICENSE_HEADER_BYTES =
  8 + KEY_ID_BYTES + STORE_ID_BYTES + FILE_TAG_BYTES + GCM_IV_BYTES;
/** The smallest well-formed license file: header, 4-byte JSON length, GCM tag. */
export const LICENSE_MIN_BYTES = LICENSE_HEADER_BYTES + 4 + GCM_TAG_BYTES;

/** A license file's content: the record, its usage, and the store sequence that wrote it. */
export interface LicenseFileContent extends StoredLicense {
  /** Store sequence number of the change that wrote this file. */
  readonly seq: number;
}

/**
 * Encodes a license file:
 * `"KWLF" | 0x01 | 0 0 0 | keyId(8) | storeId(16) | fileTag(16) | iv(12) | ciphertext | tag(16)`.
 * AES-256-GCM under the store's license key, with the whole clear header as AAD, so the file
 * is bound to this store (storeId) and to this license (fileTag = HMAC of the id). The
 * plaintext is `u32 jsonLength | json | body`, the JSON holding id, kids, content id, meta,
 * usage (with the generation) and seq.
 */
export function encodeLicenseFile(
  keys: StoreKeys,
  storeId: Uint8Array,
  content: LicenseFileContent,
): Buffer {
  const header = Buffer.alloc(LICENSE_HEADER_BYTES);
  header.write(MAGIC, 0, 'latin1');
  header[4] = VERSION;
  header.set(keys.keyId, 8);
  header.set(storeId, 16);
  header.set(fileTagOf(keys, content.id), 32);
  header.set(randomBytes(GCM_IV_BYTES), 48);
  const json = Buffer.from(
    JSON.stringify({
      id: content.id,
      kids: content.kids,
      contentId: content.contentId,
      meta: content.meta,
      usage: content.usage,
      seq: content.seq,
    }),
  );
  const len = Buffer.alloc(4);
  len.writeUInt32BE(json.length);
  const { ciphertext, tag } = gcmSeal(
    keys.license,
    header.subarray(48),
    Buffer.concat([len, json, content.body]),
    header,
  );
  return Buffer.concat([header, ciphertext, tag]);
}

/**
 * Opens a license file read from `file`, expected to hold the license whose tag is
 * `expectedTag`. STORE_FOREIGN_DEVICE when it was made under another storage key,
 * STORE_TAMPERED when it is truncated, edited, from another store or another license.
 */
export function decodeLicenseFile(
  keys: StoreKeys,
  storeId: Uint8Array,
  expectedTag: Uint8Array,
  bytes: Uint8Array,
  file: string,
): LicenseFileContent {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const tampered = (why: string) =>
    kwError('STORE_TAMPERED', `the license file ${file} ${why}`, { file });
  if (buf.length < LICENSE_MIN_BYTES) throw tampered('is truncated');
  if (buf.toString('latin1', 0, 4) !== MAGIC || buf[4] !== VERSION) {
    throw tampered('is not a keywarden license file');
  }
  const open = (header: Uint8Array) =>
    gcmOpen(
      keys.license,
      buf.subarray(48, LICENSE_HEADER_BYTES),
      buf.subarray(LICENSE_HEADER_BYTES, buf.length - GCM_TAG_BYTES),
      buf.subarray(buf.length - GCM_TAG_BYTES),
      header,
    );
  if (!sameBytes(buf.subarray(8, 16), keys.keyId)) {
    // Another key's fingerprint: a file from another device, unless only that field was
    // edited (then the file still opens with our fingerprint in its place).
    const ours = Buffer.from(buf.subarray(0, LICENSE_HEADER_BYTES));
    ours.set(keys.keyId, 8);
    if (open(ours)) throw tampered('was edited');
    throw kwError(
      'STORE_FOREIGN_DEVICE',
      `the license file ${file} was made on another device (another storage key)`,
      { file },
    );
  }
  if (!sameBytes(buf.subarray(16, 32), storeId)) throw tampered('belongs to another store');
  if (!sameBytes(buf.subarray(32, 48), expectedTag)) throw tampered('holds another license');
  const plain = open(buf.subarray(0, LICENSE_HEADER_BYTES));
  if (!plain) throw tampered('does not authenticate (edited or truncated)');
  const p = Buffer.from(plain.buffer, plain.byteOffset, plain.length);
  const jsonLen = p.length >= 4 ? p.readUInt32BE(0) : Number.MAX_SAFE_INTEGER;
  if (4 + jsonLen > p.length) throw tampered('has an unreadable layout');
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(p.toString('utf8', 4, 4 + jsonLen)) as Record<string, unknown>;
  } catch {
    throw tampered('has an unreadable layout');
  }
  const kids = v.kids;
  if (
    typeof v.id !== 'string' ||
    !Array.isArray(kids) ||
    !kids.every((k) => typeof k === 'string') ||
    typeof v.contentId !== 'string' ||
    typeof v.meta !== 'object' ||
    v.meta === null ||
    !isUsageState(v.usage) ||
    !Number.isSafeInteger(v.seq) ||
    !sameBytes(fileTagOf(keys, v.id), expectedTag)
  ) {
    throw tampered('has an unreadable layout');
  }
  return {
    id: v.id,
    kids: Object.freeze([...(kids as string[])]),
    contentId: v.contentId,
    meta: deepFreeze(v.meta as Record<string, unknown>),
    usage: freezeUsage(v.usage),
    seq: v.seq as number,
    body: p.subarray(4 + jsonLen),
  };
}

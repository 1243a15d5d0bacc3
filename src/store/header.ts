import { randomBytes } from 'node:crypto';
import { kwError } from '../errors/index.js';
import { writeFileAtomic } from '../io/atomic-file.js';
import { NODE_FS, type FileSystem } from '../io/fs.js';
import { KEY_ID_BYTES, STORE_ID_BYTES, hmac, sameBytes, type StoreKeys } from './keys.js';

const MAGIC = 'KWSH';
const VERSION = 1;
/** magic(4) version(1) reserved(3) keyId(8) storeId(16) createdMs(8). */
const BODY_BYTES = 8 + KEY_ID_BYTES + STORE_ID_BYTES + 8;
const HEADER_BYTES = BODY_BYTES + 32;

/** The store's identity, from its header file. */
export interface StoreHeader {
  /** Random at creation; bound into every other file of the store. */
  readonly storeId: Buffer;
  /** Creation time, ms since the epoch. */
  readonly createdMs: number;
}

/**
 * Reads the header `store.kwh`:
 * `"KWSH" | 0x01 | 0 0 0 | keyId(8) | storeId(16) | createdMs(u64) | HMAC-SHA256(32)`.
 * Undefined when there is none. STORE_FOREIGN_DEVICE when the key check (keyId and HMAC)
 * names another storage key, that is a store copied from another device; STORE_TAMPERED
 * when the header is damaged or edited.
 */
export async function readHeader(
  file: string,
  keys: StoreKeys,
  fs: FileSystem = NODE_FS,
): Promise<StoreHeader | undefined> {
  let buf: Buffer;
  try {
    const h = await fs.open(file, 'r');
    try {
      buf = Buffer.alloc(HEADER_BYTES + 1);
      const { bytesRead } = await h.read(buf, 0, buf.length, 0);
      buf = buf.subarray(0, bytesRead);
    } finally {
      await h.close();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw kwError('IO_FAILED', `cannot read the store header ${file}`, { file }, err);
  }
  if (buf.length !== HEADER_BYTES || buf.toString('latin1', 0, 4) !== MAGIC || buf[4] !== VERSION) {
    throw kwError('STORE_TAMPERED', `the license store header ${file} is damaged`, { file });
  }
  const mac = hmac(keys.header, buf.subarray(0, BODY_BYTES));
  if (!sameBytes(buf.subarray(8, 16), keys.keyId)) {
    // Another key's fingerprint: a store from another device, unless only that field was
    // edited (then the HMAC verifies with our fingerprint in its place).
    const ours = Buffer.from(buf.subarray(0, BODY_BYTES));
    ours.set(keys.keyId, 8);
    if (sameBytes(buf.subarray(BODY_BYTES), hmac(keys.header, ours))) {
      throw kwError('STORE_TAMPERED', `the license store header ${file} was edited`, { file });
    }
    throw kwError(
      'STORE_FOREIGN_DEVICE',
      'the license store was made on another device (its key check does not match this device)',
      { file },
    );
  }
  if (!sameBytes(buf.subarray(BODY_BYTES), mac)) {
    throw kwError('STORE_TAMPERED', `the license store header ${file} was edited`, { file });
  }
  return {
    storeId: Buffer.from(buf.subarray(16, 32)),
    createdMs: Number(buf.readBigUInt64BE(32)),
  };
}

/** Creates a header with a fresh store identity (atomic replace, mode 0600). */
export async function createHeader(
  file: string,
  keys: StoreKeys,
  fs: FileSystem = NODE_FS,
): Promise<StoreHeader> {
  const header: StoreHeader = { storeId: randomBytes(STORE_ID_BYTES), createdMs: Date.now() };
  const buf = Buffer.alloc(HEADER_BYTES);
  buf.write(MAGIC, 0, 'latin1');
  buf[4] = VERSION;
  buf.set(keys.keyId, 8);
  buf.set(header.storeId, 16);
  buf.writeBigUInt64BE(BigInt(header.createdMs), 32);
  buf.set(hmac(keys.header, buf.subarray(0, BODY_BYTES)), BODY_BYTES);
  await writeFileAtomic(file, buf, 0o600, fs);
  return header;
}

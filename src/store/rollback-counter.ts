import path from 'node:path';
import { kwError } from '../errors/index.js';
import { NODE_FS, type FileSystem } from '../io/fs.js';
import { deriveStoreKeys } from './keys.js';
import { SlotFile } from './slot-file.js';

/**
 * A monotonic counter that outlives the license store's files: the store advances it after
 * every durable change, to that change's sequence number, and refuses at open a store whose
 * files are older than the counter (STORE_ROLLBACK).
 *
 * What it can detect depends on what backs it:
 * - **A TPM 2.0 NV counter** (TPM2_NV_Increment on an index with TPMA_NV_COUNTER) or an
 *   **OP-TEE secure-storage / RPMB object** cannot be lowered by anyone, root included.
 *   Restoring any older copy of the store, all files together, is then detected.
 * - **A file** ({@link FileRollbackCounter}) is authenticated, so it cannot be edited or
 *   copied from another device, but it can be restored from an older copy like any file.
 *   It detects restoring an older copy of the store's files only when the counter file is
 *   not restored with them: keep it on another file system or partition than the store
 *   (for example a store on /data and the counter under /var/lib). In the default place,
 *   inside the store directory, a restore of the whole directory goes unnoticed; a restore
 *   of some of its files (a license file, the index, the anchor) is still detected by the
 *   store's own generations and anchor.
 *
 * Software alone cannot do better: whoever can write every file the agent writes can put
 * all of them back. An implementation whose writes wear out (TPM NV, RPMB) should know that
 * the store advances the counter once per put, usage update and remove.
 */
export interface RollbackCounter {
  /** What backs the counter, for diagnostics: 'file', 'tpm-nv', 'op-tee'. */
  readonly kind: string;
  /** The current value; 0 for a counter never advanced. */
  read(): Promise<number>;
  /**
   * Raises the counter to `value`; durable when it resolves. A value equal to the current
   * one is a no-op; a lower value is refused with STORE_ROLLBACK.
   */
  advance(value: number): Promise<void>;
  /** Releases the backing resource. */
  close(): Promise<void>;
}

/** Options of a {@link FileRollbackCounter}. */
export interface FileRollbackCounterOptions {
  /** The counter file (created with mode 0600, its directory with 0700). */
  readonly file: string;
  /** The device-bound storage key of the store it guards (authenticates the file). */
  readonly storageKey: Uint8Array;
  /** File system (default {@link NODE_FS}). */
  readonly fs?: FileSystem;
}

const MAGIC = 'KWRC';
const SLOT_BYTES = 512;

/**
 * The software {@link RollbackCounter}: a {@link SlotFile} with an HMAC under a key derived
 * from the storage key. Reading an edited or foreign counter file gives STORE_TAMPERED;
 * a missing file reads as 0. See {@link RollbackCounter} for what it can and cannot detect.
 */
export class FileRollbackCounter implements RollbackCounter {
  readonly kind = 'file';
  private slots: SlotFile | undefined;
  private value = 0;

  constructor(private readonly opts: FileRollbackCounterOptions) {}

  async read(): Promise<number> {
    const slots = await this.open();
    if (slots.status === 'invalid') {
      throw kwError('STORE_TAMPERED', `the rollback counter ${slots.file} does not verify`, {
        file: slots.file,
      });
    }
    return this.value;
  }

  async advance(value: number): Promise<void> {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new Error(`internal: counter value ${value} is not a non-negative integer`);
    }
    const slots = await this.open();
    if (value < this.value) {
      throw kwError('STORE_ROLLBACK', 'the rollback counter cannot go back', {
        file: slots.file,
        current: this.value,
        requested: value,
      });
    }
    if (value === this.value && slots.status === 'ok') return;
    const payload = Buffer.alloc(8);
    payload.writeBigUInt64BE(BigInt(value));
    await slots.write(payload);
    this.value = value;
  }

  async close(): Promise<void> {
    await this.slots?.close();
    this.slots = undefined;
  }

  private async open(): Promise<SlotFile> {
    if (this.slots) return this.slots;
    const key = deriveStoreKeys(this.opts.storageKey).counter;
    const dir = path.dirname(path.resolve(this.opts.file));
    const fs = this.opts.fs ?? NODE_FS;
    await fs.mkdir(dir, { recursive: true, mode: 0o700 }).catch((err: unknown) => {
      throw kwError('IO_FAILED', `cannot create ${dir}`, { dir }, err);
    });
    const slots = await SlotFile.open(this.opts.file, {
      key,
      magic: MAGIC,
      slotBytes: SLOT_BYTES,
      fs,
    });
    const payload = slots.read();
    this.value = payload && payload.length === 8 ? Number(payload.readBigUInt64BE(0)) : 0;
    this.slots = slots;
    return slots;
  }
}

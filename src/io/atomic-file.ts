import { randomBytes } from 'node:crypto';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { kwError } from '../errors/index.js';

/**
 * A file that appears at its final path only when complete: bytes go to a temporary
 * sibling, which is fsynced, renamed over the target, and the directory fsynced
 * (the rename is then durable). `abort()` removes the temporary file, so a failed job
 * never leaves a partial output behind.
 */
export class AtomicFile {
  private done = false;

  private constructor(
    readonly target: string,
    readonly tempPath: string,
    readonly handle: FileHandle,
  ) {}

  /** Creates the temporary file next to `target`, with permission bits `mode` (default 0644). */
  static async create(target: string, mode = 0o644): Promise<AtomicFile> {
    const dir = path.dirname(path.resolve(target));
    const tempPath = path.join(
      dir,
      `.${path.basename(target)}.${randomBytes(6).toString('hex')}.tmp`,
    );
    try {
      return new AtomicFile(target, tempPath, await open(tempPath, 'wx', mode));
    } catch (err) {
      throw kwError(
        'IO_FAILED',
        `cannot create output next to ${target}: ${(err as Error).message}`,
        {},
        err,
      );
    }
  }

  /** Writes `data` at `position` (default: append). */
  async write(data: Uint8Array, position?: number): Promise<void> {
    let off = 0;
    while (off < data.length) {
      const { bytesWritten } = await this.handle.write(
        data,
        off,
        data.length - off,
        position === undefined ? null : position + off,
      );
      off += bytesWritten;
    }
  }

  /** fsync, rename over the target, fsync the directory. */
  async commit(): Promise<void> {
    if (this.done) return;
    try {
      await this.handle.sync();
      await this.handle.close();
      await rename(this.tempPath, this.target);
      this.done = true;
      await syncDirectory(path.dirname(path.resolve(this.target)));
    } catch (err) {
      await this.abort();
      throw kwError('IO_FAILED', `cannot write ${this.target}: ${(err as Error).message}`, {}, err);
    }
  }

  /** Discards the temporary file. Safe to call more than once, and after commit. */
  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.handle.close().catch(() => undefined);
    await unlink(this.tempPath).catch(() => undefined);
  }
}

/** fsyncs a directory so that a rename inside it survives a power cut. */
export async function syncDirectory(dir: string): Promise<void> {
  const h = await open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

/** Writes a whole file atomically (secrets: pass mode 0o600, set before any byte is written). */
export async function writeFileAtomic(
  target: string,
  data: Uint8Array,
  mode?: number,
): Promise<void> {
  const f = await AtomicFile.create(target, mode);
  try {
    await f.write(data);
  } catch (err) {
    await f.abort();
    throw kwError('IO_FAILED', `cannot write ${target}: ${(err as Error).message}`, {}, err);
  }
  await f.commit();
}

import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { kwError } from '../errors/index.js';
import { NODE_FS, writeFully, type FileSystem, type FsFileHandle } from './fs.js';

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
    readonly handle: FsFileHandle,
    private readonly fs: FileSystem,
  ) {}

  /**
   * Creates the temporary file next to `target`, with permission bits `mode` (default 0644),
   * on `fs` (default {@link NODE_FS}).
   */
  static async create(target: string, mode = 0o644, fs: FileSystem = NODE_FS): Promise<AtomicFile> {
    const dir = path.dirname(path.resolve(target));
    const tempPath = path.join(
      dir,
      `.${path.basename(target)}.${randomBytes(6).toString('hex')}.tmp`,
    );
    try {
      return new AtomicFile(target, tempPath, await fs.open(tempPath, 'wx', mode), fs);
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
    await writeFully(this.handle, data, position ?? null);
  }

  /** fsync, rename over the target, fsync the directory. */
  async commit(): Promise<void> {
    if (this.done) return;
    try {
      await this.handle.sync();
      await this.handle.close();
      await this.fs.rename(this.tempPath, this.target);
      this.done = true;
      await syncDirectory(path.dirname(path.resolve(this.target)), this.fs);
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
    await this.fs.unlink(this.tempPath).catch(() => undefined);
  }
}

/** fsyncs a directory so that a rename inside it survives a power cut. */
export async function syncDirectory(dir: string, fs: FileSystem = NODE_FS): Promise<void> {
  const h = await fs.open(dir, 'r');
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
  fs: FileSystem = NODE_FS,
): Promise<void> {
  const f = await AtomicFile.create(target, mode, fs);
  try {
    await f.write(data);
  } catch (err) {
    await f.abort();
    throw kwError('IO_FAILED', `cannot write ${target}: ${(err as Error).message}`, {}, err);
  }
  await f.commit();
}

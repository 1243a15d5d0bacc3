import path from 'node:path';
import { aeadUnwrap, aeadWrap } from '../crypto/aead.js';
import { isKeywardenError, kwError } from '../errors/index.js';
import { writeFileAtomic } from '../io/atomic-file.js';
import { NODE_FS, type FileSystem } from '../io/fs.js';

/**
 * A small JSON document kept encrypted and authenticated (AES-256-GCM) under a device-bound
 * key, written atomically: the agent's domain memberships and similar state. A file from
 * another device, or edited, reads as STORE_TAMPERED rather than crashing the agent.
 */
export class SealedState<T> {
  constructor(
    private readonly file: string,
    private readonly key: Uint8Array,
    private readonly context: string,
    /** File system (default {@link NODE_FS}). */
    private readonly fs: FileSystem = NODE_FS,
  ) {}

  /** The document, or undefined when there is none yet. */
  async read(): Promise<T | undefined> {
    let blob: Buffer;
    try {
      blob = await this.fs.readFile(this.file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw kwError('IO_FAILED', `cannot read ${this.file}`, { file: this.file }, err);
    }
    try {
      return JSON.parse(Buffer.from(aeadUnwrap(this.key, blob, this.context)).toString()) as T;
    } catch (err) {
      if (isKeywardenError(err) && err.code !== 'KEY_UNWRAP_FAILED') throw err;
      throw kwError(
        'STORE_TAMPERED',
        `${path.basename(this.file)} was edited or comes from another device`,
        { file: this.file },
        err,
      );
    }
  }

  /** Replaces the document (temp file, fsync, rename, directory fsync). */
  async write(value: T): Promise<void> {
    await this.fs.mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
    const blob = aeadWrap(this.key, Buffer.from(JSON.stringify(value)), this.context);
    await writeFileAtomic(this.file, blob, 0o600, this.fs);
  }
}

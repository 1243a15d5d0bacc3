import { open, type FileHandle } from 'node:fs/promises';
import { isKeywardenError, kwError } from '../../errors/index.js';

/** Random-access input: a file or a buffer. */
export interface ByteSource {
  /** For messages. */
  readonly name: string;
  readonly size: number;
  /** Fills `into` from `position`; MEDIA_TRUNCATED when the source ends first. */
  read(into: Uint8Array, position: number): Promise<void>;
}

/** Positioned output: a file or a growable buffer. */
export interface ByteSink {
  write(data: Uint8Array, position: number): Promise<void>;
}

function truncated(name: string, position: number, wanted: number): Error {
  return kwError('MEDIA_TRUNCATED', `${name}: ${wanted} bytes at ${position} run past the end`, {
    offset: position,
  });
}

/** A file opened read-only. Reads loop until filled, so short reads never leak upward. */
export class FileSource implements ByteSource {
  private constructor(
    readonly name: string,
    readonly size: number,
    private readonly handle: FileHandle,
  ) {}

  /** Opens `path`; IO_FAILED when it cannot be opened. */
  static async open(path: string): Promise<FileSource> {
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (err) {
      throw kwError('IO_FAILED', `cannot open ${path}: ${(err as Error).message}`, { path }, err);
    }
    try {
      const stat = await handle.stat();
      if (!stat.isFile()) throw kwError('IO_FAILED', `${path} is not a regular file`, { path });
      return new FileSource(path, stat.size, handle);
    } catch (err) {
      await handle.close().catch(() => undefined);
      if (isKeywardenError(err)) throw err;
      throw kwError('IO_FAILED', `cannot stat ${path}: ${(err as Error).message}`, { path }, err);
    }
  }

  async read(into: Uint8Array, position: number): Promise<void> {
    if (position < 0 || position + into.length > this.size)
      throw truncated(this.name, position, into.length);
    let done = 0;
    while (done < into.length) {
      const { bytesRead } = await this.handle.read(into, done, into.length - done, position + done);
      if (bytesRead === 0) throw truncated(this.name, position + done, into.length - done);
      done += bytesRead;
    }
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

/** A buffer as a source (tests, the fuzzer, in-memory segments). */
export class BufferSource implements ByteSource {
  readonly size: number;

  constructor(
    private readonly buf: Uint8Array,
    readonly name = 'buffer',
  ) {
    this.size = buf.length;
  }

  read(into: Uint8Array, position: number): Promise<void> {
    if (position < 0 || position + into.length > this.size)
      return Promise.reject(truncated(this.name, position, into.length));
    into.set(this.buf.subarray(position, position + into.length));
    return Promise.resolve();
  }
}

/** A growable in-memory sink. */
export class BufferSink implements ByteSink {
  private buf = Buffer.alloc(0);
  private length = 0;

  write(data: Uint8Array, position: number): Promise<void> {
    const end = position + data.length;
    if (end > this.buf.length) {
      const grown = Buffer.alloc(Math.max(end, this.buf.length * 2));
      this.buf.copy(grown, 0, 0, this.length);
      this.buf = grown;
    }
    this.buf.set(data, position);
    this.length = Math.max(this.length, end);
    return Promise.resolve();
  }

  /** The bytes written. */
  toBuffer(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

import * as nodeFs from 'node:fs/promises';

/**
 * An open file, as the agent's state files use it: positioned reads and writes, fsync and
 * fdatasync, truncate, size, close. node:fs/promises' FileHandle satisfies it.
 */
export interface FsFileHandle {
  /** Reads up to `length` bytes at `position` into `buffer` from `offset`. */
  read(
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number | null,
  ): Promise<{ bytesRead: number }>;
  /** Writes `length` bytes of `buffer` from `offset` at `position` (null: append). */
  write(
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number | null,
  ): Promise<{ bytesWritten: number }>;
  /** fsync(2). */
  sync(): Promise<void>;
  /** fdatasync(2). */
  datasync(): Promise<void>;
  /** ftruncate(2). */
  truncate(length: number): Promise<void>;
  /** fstat(2); only the size is used. */
  stat(): Promise<{ size: number }>;
  /** close(2). */
  close(): Promise<void>;
}

/** The open(2) modes the agent uses. */
export type OpenFlags = 'r' | 'r+' | 'w+' | 'wx';

/**
 * The file system operations the agent's persistent state needs: key vault, secure clock,
 * license store, sealed documents. Errors are node-style (an `Error` with `code`, e.g.
 * ENOENT, EEXIST), which callers test for. Injectable (`AgentConfig.fs`) so that tests can
 * inject faults; {@link NODE_FS} is the default. A directory is fsynced by opening it 'r'
 * and calling `sync()` on the handle.
 */
export interface FileSystem {
  open(path: string, flags: OpenFlags, mode?: number): Promise<FsFileHandle>;
  readFile(path: string): Promise<Buffer>;
  rename(from: string, to: string): Promise<void>;
  link(existing: string, newPath: string): Promise<void>;
  unlink(path: string): Promise<void>;
  mkdir(path: string, opts?: { recursive?: boolean; mode?: number }): Promise<void>;
  chmod(path: string, mode: number): Promise<void>;
  readdir(path: string): Promise<string[]>;
  stat(path: string): Promise<{ size: number }>;
}

/** {@link FileSystem} on node:fs/promises. */
export const NODE_FS: FileSystem = Object.freeze({
  open: (p: string, flags: OpenFlags, mode?: number) => nodeFs.open(p, flags, mode),
  readFile: (p: string) => nodeFs.readFile(p),
  rename: (from: string, to: string) => nodeFs.rename(from, to),
  link: (existing: string, newPath: string) => nodeFs.link(existing, newPath),
  unlink: (p: string) => nodeFs.unlink(p),
  mkdir: async (p: string, opts?: { recursive?: boolean; mode?: number }) => {
    await nodeFs.mkdir(p, opts);
  },
  chmod: (p: string, mode: number) => nodeFs.chmod(p, mode),
  readdir: (p: string) => nodeFs.readdir(p),
  stat: (p: string) => nodeFs.stat(p),
});

/** Creates `file` exclusively (fails with EEXIST) with `mode` and writes `data` to it. */
export async function writeNewFile(
  fs: FileSystem,
  file: string,
  data: Uint8Array,
  mode: number,
): Promise<void> {
  const h = await fs.open(file, 'wx', mode);
  try {
    await writeFully(h, data, 0);
  } finally {
    await h.close();
  }
}

/** Writes all of `data` at `position` (a short write is retried; null position appends). */
export async function writeFully(
  handle: FsFileHandle,
  data: Uint8Array,
  position: number | null,
): Promise<void> {
  let off = 0;
  while (off < data.length) {
    const { bytesWritten } = await handle.write(
      data,
      off,
      data.length - off,
      position === null ? null : position + off,
    );
    off += bytesWritten;
  }
}

import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { kwError } from '../errors/index.js';
import { NODE_FS, writeNewFile, type FileSystem } from '../io/fs.js';

/** What a lock file holds. */
interface LockOwner {
  readonly pid: number;
  /** Process start time in clock ticks since boot (/proc/PID/stat field 22), when known. */
  readonly start: string | null;
  /** Random per acquisition: tells our lock from a later holder's. */
  readonly token: string;
}

const ATTEMPTS = 8;

/**
 * An exclusive lock on a store directory held by one process: a file with the owner's pid,
 * its start time and a random token. It is created by link(2) from a complete temporary
 * file, so it never exists half-written, and link fails when the lock exists.
 *
 * A lock whose owner is dead is stale and taken over: the process is gone (kill(pid, 0) says
 * ESRCH), or a process with that pid started at another time (the pid was reused after a
 * reboot or wrap-around). Take-over renames the stale file aside and checks that it moved
 * the very file it judged stale; if another process took the lock in between, the file is
 * put back and the caller gets STORE_LOCKED. A second open in the same process also gets
 * STORE_LOCKED.
 */
export class StoreLock {
  private constructor(
    readonly file: string,
    private readonly token: string,
    private readonly fs: FileSystem,
  ) {}

  /**
   * Takes the lock in `file` (on `fs`, default {@link NODE_FS}); STORE_LOCKED while a live
   * process holds it.
   */
  static async acquire(file: string, fs: FileSystem = NODE_FS): Promise<StoreLock> {
    const owner: LockOwner = {
      pid: process.pid,
      start: await startTimeOf(process.pid),
      token: randomBytes(12).toString('hex'),
    };
    const body = JSON.stringify(owner);
    const temp = `${file}.${process.pid}.${owner.token}.tmp`;
    try {
      await writeNewFile(fs, temp, Buffer.from(body), 0o600);
    } catch (err) {
      throw kwError('IO_FAILED', `cannot create the store lock ${file}`, { file }, err);
    }
    try {
      for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
        try {
          await fs.link(temp, file);
          await removeLeftovers(fs, file);
          return new StoreLock(file, owner.token, fs);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
            throw kwError('IO_FAILED', `cannot create the store lock ${file}`, { file }, err);
          }
        }
        await takeOverIfStale(fs, file, owner.token);
      }
      throw kwError('STORE_LOCKED', 'the license store lock keeps changing hands', { file });
    } finally {
      await fs.unlink(temp).catch(() => undefined);
    }
  }

  /** Releases the lock if this holder still owns it. */
  async release(): Promise<void> {
    const current = await readOwner(this.fs, this.file);
    if (current?.token === this.token) await this.fs.unlink(this.file).catch(() => undefined);
  }
}

/** Moves a stale lock out of the way; STORE_LOCKED when its owner is alive. */
async function takeOverIfStale(fs: FileSystem, file: string, token: string): Promise<void> {
  const text = await readText(fs, file);
  if (text === undefined) return; // released meanwhile: try again
  const owner = parseOwner(text);
  if (owner && (await isAlive(owner))) {
    throw kwError('STORE_LOCKED', `the license store is in use by process ${owner.pid}`, {
      file,
      pid: owner.pid,
    });
  }
  const aside = `${file}.stale.${token}`;
  try {
    await fs.rename(file, aside);
  } catch {
    return; // someone else moved it first: try again
  }
  const moved = await readText(fs, aside);
  if (moved === text) {
    await fs.unlink(aside).catch(() => undefined);
    return;
  }
  // Another process took the lock between our read and our rename: give it back.
  await fs.link(aside, file).catch(() => undefined);
  await fs.unlink(aside).catch(() => undefined);
  const holder = moved === undefined ? undefined : parseOwner(moved);
  throw kwError('STORE_LOCKED', 'the license store is in use by another process', {
    file,
    pid: holder?.pid,
  });
}

/** Removes temporary lock files left by processes that died while taking the lock. */
async function removeLeftovers(fs: FileSystem, file: string): Promise<void> {
  const dir = path.dirname(file);
  const base = path.basename(file);
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    const m = new RegExp(`^${escapeRe(base)}\\.(\\d+)\\.[0-9a-f]+\\.tmp$`).exec(name);
    if (!m || Number(m[1]) === process.pid) continue;
    if (!(await isAlive({ pid: Number(m[1]), start: null, token: '' }))) {
      await fs.unlink(path.join(dir, name)).catch(() => undefined);
    }
  }
}

async function readOwner(fs: FileSystem, file: string): Promise<LockOwner | undefined> {
  const text = await readText(fs, file);
  return text === undefined ? undefined : parseOwner(text);
}

/** The file's text, or undefined when it cannot be read. */
async function readText(fs: FileSystem, file: string): Promise<string | undefined> {
  return fs.readFile(file).then(
    (b) => b.toString('utf8'),
    () => undefined,
  );
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const v = JSON.parse(text) as Partial<LockOwner>;
    if (!Number.isSafeInteger(v.pid) || (v.pid as number) <= 0 || typeof v.token !== 'string') {
      return undefined;
    }
    return {
      pid: v.pid as number,
      start: typeof v.start === 'string' ? v.start : null,
      token: v.token,
    };
  } catch {
    return undefined; // unreadable: treated as stale, like a lock of a dead process
  }
}

async function isAlive(owner: LockOwner): Promise<boolean> {
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    // EPERM: a live process of another user.
  }
  if (owner.start === null) return true;
  const start = await startTimeOf(owner.pid);
  return start === null || start === owner.start;
}

/**
 * Field 22 of /proc/PID/stat (start time), or null where /proc is not available. Process
 * introspection, not agent state: always read from the real /proc, never the injected fs.
 */
async function startTimeOf(pid: number): Promise<string | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

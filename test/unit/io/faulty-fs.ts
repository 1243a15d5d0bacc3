/**
 * A fault-injecting {@link FileSystem} for tests: every call goes to {@link NODE_FS} (the
 * real disk), is recorded, and may be failed with a node-style errno error chosen by a
 * rule. Not an in-memory file system: what it lets through really reaches the disk.
 */
import path from 'node:path';
import { NODE_FS, type FileSystem, type FsFileHandle, type OpenFlags } from '../../../src/io/fs.js';

/** Operations a rule can fail: the file system's own, and those of an open handle. */
export type FsOp =
  | keyof FileSystem
  | 'handle.read'
  | 'handle.write'
  | 'handle.sync'
  | 'handle.datasync'
  | 'handle.truncate'
  | 'handle.stat';

/** One recorded call. */
export interface FsCall {
  readonly op: FsOp | 'handle.close';
  /** Absolute path (for a handle: the path it was opened with). */
  readonly path: string;
  /** rename and link: the destination. */
  readonly to?: string;
  /** open: the flags. */
  readonly flags?: OpenFlags;
}

/** A fault: when `match` is true for a call, it fails with `code` (once, unless `sticky`). */
export interface FaultRule {
  readonly match: (call: FsCall) => boolean;
  readonly code: string;
  readonly sticky?: boolean;
}

export function errnoError(code: string, call: FsCall): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(
    `${code}: injected fault, ${call.op} '${call.path}'`,
  );
  err.code = code;
  err.syscall = call.op;
  err.path = call.path;
  return err;
}

export class FaultyFs implements FileSystem {
  readonly calls: FsCall[] = [];
  private rules: FaultRule[] = [];
  /** Faults that fired, in order. */
  readonly fired: FsCall[] = [];

  /** Arms a fault. */
  inject(rule: FaultRule): void {
    this.rules.push(rule);
  }

  /** Disarms every fault. */
  clear(): void {
    this.rules = [];
  }

  /** Paths this fs created or replaced: files opened for writing, rename and link targets. */
  written(): Set<string> {
    const out = new Set<string>();
    for (const c of this.calls) {
      if (c.op === 'open' && c.flags !== 'r') out.add(c.path);
      if ((c.op === 'rename' || c.op === 'link') && c.to) out.add(c.to);
      if (c.op === 'mkdir') out.add(c.path);
    }
    return out;
  }

  private async run<T>(call: FsCall, fn: () => Promise<T>): Promise<T> {
    this.calls.push(call);
    const i = this.rules.findIndex((r) => r.match(call));
    if (i >= 0) {
      const rule = this.rules[i]!;
      if (!rule.sticky) this.rules.splice(i, 1);
      this.fired.push(call);
      throw errnoError(rule.code, call);
    }
    return fn();
  }

  async open(p: string, flags: OpenFlags, mode?: number): Promise<FsFileHandle> {
    const file = path.resolve(p);
    const inner = await this.run({ op: 'open', path: file, flags }, () =>
      NODE_FS.open(p, flags, mode),
    );
    const call = (op: FsOp): FsCall => ({ op, path: file });
    return {
      read: (b, o, l, pos) => this.run(call('handle.read'), () => inner.read(b, o, l, pos)),
      write: (b, o, l, pos) => this.run(call('handle.write'), () => inner.write(b, o, l, pos)),
      sync: () => this.run(call('handle.sync'), () => inner.sync()),
      datasync: () => this.run(call('handle.datasync'), () => inner.datasync()),
      truncate: (n) => this.run(call('handle.truncate'), () => inner.truncate(n)),
      stat: () => this.run(call('handle.stat'), () => inner.stat()),
      close: () => {
        this.calls.push({ op: 'handle.close', path: file });
        return inner.close();
      },
    };
  }

  readFile(p: string): Promise<Buffer> {
    return this.run({ op: 'readFile', path: path.resolve(p) }, () => NODE_FS.readFile(p));
  }

  rename(from: string, to: string): Promise<void> {
    return this.run({ op: 'rename', path: path.resolve(from), to: path.resolve(to) }, () =>
      NODE_FS.rename(from, to),
    );
  }

  link(existing: string, newPath: string): Promise<void> {
    return this.run({ op: 'link', path: path.resolve(existing), to: path.resolve(newPath) }, () =>
      NODE_FS.link(existing, newPath),
    );
  }

  unlink(p: string): Promise<void> {
    return this.run({ op: 'unlink', path: path.resolve(p) }, () => NODE_FS.unlink(p));
  }

  mkdir(p: string, opts?: { recursive?: boolean; mode?: number }): Promise<void> {
    return this.run({ op: 'mkdir', path: path.resolve(p) }, () => NODE_FS.mkdir(p, opts));
  }

  chmod(p: string, mode: number): Promise<void> {
    return this.run({ op: 'chmod', path: path.resolve(p) }, () => NODE_FS.chmod(p, mode));
  }

  readdir(p: string): Promise<string[]> {
    return this.run({ op: 'readdir', path: path.resolve(p) }, () => NODE_FS.readdir(p));
  }

  stat(p: string): Promise<{ size: number }> {
    return this.run({ op: 'stat', path: path.resolve(p) }, () => NODE_FS.stat(p));
  }
}

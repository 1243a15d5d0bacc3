import path from 'node:path';
import { kwError } from '../errors/index.js';
import { syncDirectory } from '../io/atomic-file.js';
import { NODE_FS, writeFully, type FileSystem, type FsFileHandle } from '../io/fs.js';
import { hmac, sameBytes } from './keys.js';

const VERSION = 1;
const MAC_BYTES = 32;
/** magic(4) version(1) reserved(3) writeNo(8) payloadLength(4). */
const HEAD_BYTES = 20;

/** What a {@link SlotFile} held when it was opened. */
export type SlotFileStatus =
  /** No file: nothing was ever written. */
  | 'missing'
  /** A file, but neither slot carries a valid record (edited, or from another key). */
  | 'invalid'
  /** At least one slot verifies. */
  | 'ok';

/** Options of {@link SlotFile.open}. */
export interface SlotFileOptions {
  /** HMAC-SHA256 key of the records. */
  readonly key: Uint8Array;
  /** Four ASCII characters naming the record type (so one slot file cannot pose as another). */
  readonly magic: string;
  /** Size of each slot; slots sit at 0 and `slotBytes`, so keep it a multiple of 512. */
  readonly slotBytes: number;
  /** File system (default {@link NODE_FS}). */
  readonly fs?: FileSystem;
}

/**
 * A small authenticated record, rewritten in place with two slots. Each write goes to the
 * slot that does not hold the newest record, carries a write number one above it and an
 * HMAC, and is fdatasynced before the write resolves. A write torn by a crash or power cut
 * leaves that slot unverifiable and the other slot (the previous record) intact, so a read
 * always yields the last completed write or the one before it. One write costs one
 * fdatasync, against three for a temp-file-and-rename replace.
 *
 * Records are authenticated, not encrypted: they hold counters and digests, no secrets.
 */
export class SlotFile {
  private constructor(
    readonly file: string,
    private readonly handle: FsFileHandle,
    private readonly opts: SlotFileOptions,
    private state: SlotFileStatus,
    private newest: { slot: number; writeNo: bigint; payload: Buffer } | undefined,
  ) {}

  /** Opens (creating, mode 0600) the slot file and verifies both slots. */
  static async open(file: string, opts: SlotFileOptions): Promise<SlotFile> {
    const fs = opts.fs ?? NODE_FS;
    let handle: FsFileHandle;
    let existed = true;
    try {
      handle = await fs.open(file, 'r+');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(file, err);
      existed = false;
      try {
        handle = await fs.open(file, 'w+', 0o600);
        await syncDirectory(path.dirname(path.resolve(file)), fs);
      } catch (err2) {
        throw ioError(file, err2);
      }
    }
    try {
      const newest = existed ? await readNewest(handle, opts) : undefined;
      const size = existed ? (await handle.stat()).size : 0;
      const status: SlotFileStatus = newest ? 'ok' : size === 0 ? 'missing' : 'invalid';
      return new SlotFile(file, handle, opts, status, newest);
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw ioError(file, err);
    }
  }

  /** What the file held when opened; 'ok' once a write completed. */
  get status(): SlotFileStatus {
    return this.state;
  }

  /** The payload of the newest verified record, if any. */
  read(): Buffer | undefined {
    return this.newest?.payload;
  }

  /** Writes `payload` as the new newest record; durable when it resolves. */
  async write(payload: Uint8Array): Promise<void> {
    const { slotBytes, key, magic } = this.opts;
    if (HEAD_BYTES + payload.length + MAC_BYTES > slotBytes) {
      throw new Error(`internal: a ${payload.length}-byte record does not fit its slot`);
    }
    const slot = this.newest ? 1 - this.newest.slot : 0;
    const writeNo = (this.newest?.writeNo ?? 0n) + 1n;
    const rec = Buffer.alloc(slotBytes);
    rec.write(magic, 0, 'latin1');
    rec[4] = VERSION;
    rec.writeBigUInt64BE(writeNo, 8);
    rec.writeUInt32BE(payload.length, 16);
    rec.set(payload, HEAD_BYTES);
    const end = HEAD_BYTES + payload.length;
    rec.set(hmac(key, rec.subarray(0, end)), end);
    try {
      await writeFully(this.handle, rec, slot * slotBytes);
      await this.handle.datasync();
    } catch (err) {
      throw ioError(this.file, err);
    }
    this.newest = { slot, writeNo, payload: Buffer.from(payload) };
    this.state = 'ok';
  }

  /** Closes the file. */
  async close(): Promise<void> {
    await this.handle.close().catch(() => undefined);
  }
}

async function readNewest(
  handle: FsFileHandle,
  opts: SlotFileOptions,
): Promise<{ slot: number; writeNo: bigint; payload: Buffer } | undefined> {
  const buf = Buffer.alloc(opts.slotBytes * 2);
  const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
  let best: { slot: number; writeNo: bigint; payload: Buffer } | undefined;
  for (const slot of [0, 1]) {
    const start = slot * opts.slotBytes;
    const rec = buf.subarray(start, Math.min(bytesRead, start + opts.slotBytes));
    const parsed = parseRecord(rec, opts);
    if (parsed && (!best || parsed.writeNo > best.writeNo)) best = { slot, ...parsed };
  }
  return best;
}

function parseRecord(
  rec: Buffer,
  opts: SlotFileOptions,
): { writeNo: bigint; payload: Buffer } | undefined {
  if (rec.length < HEAD_BYTES + MAC_BYTES) return undefined;
  if (rec.toString('latin1', 0, 4) !== opts.magic || rec[4] !== VERSION) return undefined;
  const len = rec.readUInt32BE(16);
  const end = HEAD_BYTES + len;
  if (end + MAC_BYTES > rec.length) return undefined;
  if (!sameBytes(rec.subarray(end, end + MAC_BYTES), hmac(opts.key, rec.subarray(0, end)))) {
    return undefined;
  }
  return { writeNo: rec.readBigUInt64BE(8), payload: Buffer.from(rec.subarray(HEAD_BYTES, end)) };
}

function ioError(file: string, err: unknown) {
  return kwError('IO_FAILED', `cannot use ${file}: ${(err as Error).message}`, { file }, err);
}

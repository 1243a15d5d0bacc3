import { randomBytes } from 'node:crypto';
import { GCM_IV_BYTES, GCM_TAG_BYTES, gcmOpen, gcmSeal } from '../crypto/aead.js';
import { kwError } from '../errors/index.js';
import { writeFileAtomic } from '../io/atomic-file.js';
import { NODE_FS, writeFully, type FileSystem, type FsFileHandle } from '../io/fs.js';
import { KEY_ID_BYTES, STORE_ID_BYTES, sameBytes, type StoreKeys } from './keys.js';
import { isUsageState, type UsageState } from './types.js';

const MAGIC = 'KWJI';
const VERSION = 1;
/** magic(4) version(1) reserved(3) keyId(8) storeId(16) epoch(16) reserved(16). */
export const JOURNAL_HEADER_BYTES = 64;
/** Frame overhead: u32 length, IV, GCM tag. */
const FRAME_OVERHEAD = 4 + GCM_IV_BYTES + GCM_TAG_BYTES;
/** Largest frame accepted (a snapshot of a very large store); anything larger is damage. */
const MAX_FRAME_BYTES = 256 * 1024 * 1024;

/** One license as the index journal records it. */
export interface JournalEntry {
  readonly id: string;
  readonly kids: readonly string[];
  readonly contentId: string;
  readonly meta: Readonly<Record<string, unknown>>;
  readonly usage: UsageState;
  /** File tag, hex: the license file is `licenses/<file>.kwl`. */
  readonly file: string;
  /** See IndexEntry.refused. */
  readonly refused?: 'rollback';
}

/**
 * A journal record: a snapshot (first frame only), a put, a delete, or nothing (a change
 * that was announced but never landed, settled at open: it only moves the sequence on).
 */
export type JournalFrame =
  | { readonly t: 's'; readonly s: number; readonly e: readonly JournalEntry[] }
  | { readonly t: 'p'; readonly s: number; readonly e: JournalEntry }
  | { readonly t: 'd'; readonly s: number; readonly f: string }
  | { readonly t: 'n'; readonly s: number };

/** What reading the journal found. */
export interface JournalReplay {
  /** 'missing': no file; 'corrupt': unusable (see `reason`), the index must be rebuilt. */
  readonly status: 'ok' | 'missing' | 'corrupt';
  readonly reason?: string;
  /** Live entries by file tag (hex), after every valid frame. */
  readonly entries: Map<string, JournalEntry>;
  /** Sequence number of the last valid frame. */
  readonly seq: number;
  /** Frames after the snapshot (drives compaction). */
  readonly frames: number;
  /** Bytes of trailing garbage dropped (a torn append). */
  readonly tornBytes: number;
}

/**
 * The index journal `index.kwj`: a 64-byte clear header, then length-prefixed frames, each
 * sealed on its own with AES-256-GCM:
 * `u32 ciphertextLength | iv(12) | ciphertext | tag(16)`, AAD = `header(64) | u64 offset`.
 *
 * - The header carries a random epoch per journal file and the AAD the frame's offset, so
 *   a frame cannot be moved within the file or into another journal; sequence numbers
 *   must rise from frame to frame, so none can be replayed either.
 * - The first frame is a snapshot of every entry; later frames are puts and deletes.
 *   Compaction writes a new file holding one snapshot (temp file, fsync, rename).
 * - An append that a crash tore leaves a last frame that runs past the end of the file or
 *   fails its tag; it is dropped and the file truncated. A bad frame with data after it
 *   is damage: the journal is 'corrupt' and the index is rebuilt from the license files.
 * - Truncation at a frame boundary cannot be seen here; the anchor and the rollback
 *   counter, which hold the latest sequence number, catch it.
 */
export class Journal {
  private constructor(
    readonly file: string,
    private handle: FsFileHandle,
    private readonly header: Buffer,
    private readonly keys: StoreKeys,
    private end: number,
    private appended: number,
  ) {}

  /** Frames appended since the snapshot. */
  get frames(): number {
    return this.appended;
  }

  /** Size of the journal file in bytes. */
  get bytes(): number {
    return this.end;
  }

  /**
   * Reads and replays the journal. When it is usable, also opens it for appending, after
   * truncating a torn tail.
   */
  static async open(
    file: string,
    keys: StoreKeys,
    storeId: Uint8Array,
    fs: FileSystem = NODE_FS,
  ): Promise<{ replay: JournalReplay; journal?: Journal }> {
    let handle: FsFileHandle;
    try {
      handle = await fs.open(file, 'r+');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        return { replay: emptyReplay('missing', 'the index journal is missing') };
      }
      throw kwError('IO_FAILED', `cannot open the index journal ${file}`, { file }, err);
    }
    try {
      const size = (await handle.stat()).size;
      if (size > MAX_FRAME_BYTES + JOURNAL_HEADER_BYTES) {
        await handle.close();
        return { replay: emptyReplay('corrupt', 'the index journal is implausibly large') };
      }
      const buf = Buffer.alloc(size);
      const { bytesRead } = await handle.read(buf, 0, size, 0);
      const { replay, validEnd } = replayBuffer(buf.subarray(0, bytesRead), keys, storeId);
      if (replay.status !== 'ok') {
        await handle.close();
        return { replay };
      }
      if (validEnd < size) {
        await handle.truncate(validEnd);
        await handle.datasync();
      }
      const header = Buffer.from(buf.subarray(0, JOURNAL_HEADER_BYTES));
      return {
        replay,
        journal: new Journal(file, handle, header, keys, validEnd, replay.frames),
      };
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw kwError('IO_FAILED', `cannot read the index journal ${file}`, { file }, err);
    }
  }

  /**
   * Writes a new journal holding one snapshot at `seq` (temp file, fsync, rename, directory
   * fsync) and opens it for appending. The previous journal, if open, must be closed.
   */
  static async create(
    file: string,
    keys: StoreKeys,
    storeId: Uint8Array,
    seq: number,
    entries: Iterable<JournalEntry>,
    fs: FileSystem = NODE_FS,
  ): Promise<Journal> {
    const header = Buffer.alloc(JOURNAL_HEADER_BYTES);
    header.write(MAGIC, 0, 'latin1');
    header[4] = VERSION;
    header.set(keys.keyId, 8);
    header.set(storeId, 16);
    header.set(randomBytes(16), 32);
    const frame = sealFrame(keys, header, JOURNAL_HEADER_BYTES, {
      t: 's',
      s: seq,
      e: [...entries],
    });
    const data = Buffer.concat([header, frame]);
    await writeFileAtomic(file, data, 0o600, fs);
    let handle: FsFileHandle;
    try {
      handle = await fs.open(file, 'r+');
    } catch (err) {
      throw kwError('IO_FAILED', `cannot open the index journal ${file}`, { file }, err);
    }
    return new Journal(file, handle, header, keys, data.length, 0);
  }

  /** Appends a frame; durable (fdatasync) when it resolves. */
  async append(frame: JournalFrame): Promise<void> {
    const bytes = sealFrame(this.keys, this.header, this.end, frame);
    try {
      await writeFully(this.handle, bytes, this.end);
      await this.handle.datasync();
    } catch (err) {
      throw kwError('IO_FAILED', `cannot append to the index journal ${this.file}`, {}, err);
    }
    this.end += bytes.length;
    this.appended++;
  }

  /** Closes the file. */
  async close(): Promise<void> {
    await this.handle.close().catch(() => undefined);
  }
}

function sealFrame(keys: StoreKeys, header: Buffer, offset: number, frame: JournalFrame): Buffer {
  const iv = randomBytes(GCM_IV_BYTES);
  const { ciphertext, tag } = gcmSeal(
    keys.index,
    iv,
    Buffer.from(JSON.stringify(frame)),
    frameAad(header, offset),
  );
  const len = Buffer.alloc(4);
  len.writeUInt32BE(ciphertext.length);
  return Buffer.concat([len, iv, ciphertext, tag]);
}

function frameAad(header: Buffer, offset: number): Buffer {
  const aad = Buffer.alloc(header.length + 8);
  header.copy(aad);
  aad.writeBigUInt64BE(BigInt(offset), header.length);
  return aad;
}

function emptyReplay(status: 'missing' | 'corrupt', reason: string): JournalReplay {
  return {
    status,
    reason,
    entries: new Map(),
    seq: 0,
    frames: 0,
    tornBytes: 0,
  };
}

/** Replays a whole journal held in memory. Exported for the fuzz tests. */
export function replayBuffer(
  buf: Buffer,
  keys: StoreKeys,
  storeId: Uint8Array,
): { replay: JournalReplay; validEnd: number } {
  const corrupt = (reason: string) => ({ replay: emptyReplay('corrupt', reason), validEnd: 0 });
  if (buf.length < JOURNAL_HEADER_BYTES) return corrupt('the index journal header is truncated');
  const header = buf.subarray(0, JOURNAL_HEADER_BYTES);
  if (header.toString('latin1', 0, 4) !== MAGIC || header[4] !== VERSION) {
    return corrupt('the index journal header is damaged');
  }
  if (!sameBytes(header.subarray(8, 8 + KEY_ID_BYTES), keys.keyId)) {
    return corrupt('the index journal was made under another storage key');
  }
  if (!sameBytes(header.subarray(16, 16 + STORE_ID_BYTES), storeId)) {
    return corrupt('the index journal belongs to another store');
  }
  const entries = new Map<string, JournalEntry>();
  let seq = -1;
  let frames = -1;
  let off = JOURNAL_HEADER_BYTES;
  while (off < buf.length) {
    const remaining = buf.length - off;
    const len = remaining >= 4 ? buf.readUInt32BE(off) : MAX_FRAME_BYTES + 1;
    if (len > MAX_FRAME_BYTES || FRAME_OVERHEAD + len > remaining) break; // torn: runs past EOF
    const end = off + FRAME_OVERHEAD + len;
    const plain = gcmOpen(
      keys.index,
      buf.subarray(off + 4, off + 4 + GCM_IV_BYTES),
      buf.subarray(off + 4 + GCM_IV_BYTES, end - GCM_TAG_BYTES),
      buf.subarray(end - GCM_TAG_BYTES, end),
      frameAad(header, off),
    );
    if (!plain) {
      if (end === buf.length) break; // torn: the last frame did not reach the disk whole
      return corrupt(`an index journal frame at offset ${off} does not authenticate`);
    }
    const frame = parseFrame(plain);
    if (!frame) return corrupt(`an index journal frame at offset ${off} is unreadable`);
    if (seq < 0 ? frame.t !== 's' : frame.t === 's' || frame.s <= seq) {
      return corrupt(`an index journal frame at offset ${off} is out of order`);
    }
    if (frame.t === 's') {
      for (const e of frame.e) entries.set(e.file, e);
    } else if (frame.t === 'p') {
      entries.set(frame.e.file, frame.e);
    } else if (frame.t === 'd') {
      entries.delete(frame.f);
    }
    seq = frame.s;
    frames++;
    off = end;
  }
  if (seq < 0) return corrupt('the index journal holds no snapshot');
  return {
    replay: {
      status: 'ok',
      entries,
      seq,
      frames,
      tornBytes: buf.length - off,
    },
    validEnd: off,
  };
}

const TAG_HEX_RE = /^[0-9a-f]{32}$/;

function parseFrame(plain: Uint8Array): JournalFrame | undefined {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(Buffer.from(plain).toString('utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || !Number.isSafeInteger(v.s) || (v.s as number) < 0) {
    return undefined;
  }
  if (v.t === 's') {
    return Array.isArray(v.e) && v.e.every(isEntry) ? (v as JournalFrame) : undefined;
  }
  if (v.t === 'p') return isEntry(v.e) ? (v as JournalFrame) : undefined;
  if (v.t === 'd') {
    return typeof v.f === 'string' && TAG_HEX_RE.test(v.f) ? (v as JournalFrame) : undefined;
  }
  return v.t === 'n' ? (v as JournalFrame) : undefined;
}

function isEntry(v: unknown): v is JournalEntry {
  if (typeof v !== 'object' || v === null) return false;
  const e = v as Record<string, unknown>;
  return (
    typeof e.id === 'string' &&
    Array.isArray(e.kids) &&
    e.kids.every((k) => typeof k === 'string') &&
    typeof e.contentId === 'string' &&
    typeof e.meta === 'object' &&
    e.meta !== null &&
    isUsageState(e.usage) &&
    typeof e.file === 'string' &&
    TAG_HEX_RE.test(e.file) &&
    (e.refused === undefined || e.refused === 'rollback')
  );
}

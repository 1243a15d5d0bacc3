import path from 'node:path';
import { isKeywardenError, kwError, type KeywardenError } from '../errors/index.js';
import { syncDirectory, writeFileAtomic } from '../io/atomic-file.js';
import { NODE_FS, type FileSystem } from '../io/fs.js';
import { Anchor, type AnchorState } from './anchor.js';
import { StateDigest } from './digest.js';
import { createHeader, readHeader } from './header.js';
import { Journal, type JournalEntry, type JournalFrame, type JournalReplay } from './journal.js';
import { deriveStoreKeys, fileTagOf, type StoreKeys } from './keys.js';
import {
  LICENSE_MIN_BYTES,
  decodeLicenseFile,
  encodeLicenseFile,
  type LicenseFileContent,
} from './license-file.js';
import { StoreLock } from './lock.js';
import { FileRollbackCounter, type RollbackCounter } from './rollback-counter.js';
import {
  applyUsagePatch,
  deepFreeze,
  freezeUsage,
  freshUsage,
  normalizeRecord,
  type IndexEntry,
  type LicenseRecord,
  type StoreProblem,
  type StoredLicense,
  type UsagePatch,
  type UsageState,
} from './types.js';

/** Default limit of one license file. */
export const DEFAULT_MAX_LICENSE_BYTES = 256 * 1024;
/** Default minimum number of appended journal frames before a compaction. */
export const DEFAULT_COMPACT_AFTER_FRAMES = 256;

/** The files of a store directory. */
export const STORE_FILES = {
  header: 'store.kwh',
  journal: 'index.kwj',
  anchor: 'anchor.kwa',
  counter: 'rollback.kwc',
  lock: 'store.lock',
  licenses: 'licenses',
} as const;

/** Options of {@link LicenseStore.open}. */
export interface LicenseStoreOptions {
  /** The store directory (created with mode 0700). */
  readonly dir: string;
  /** The device-bound storage key, 32 bytes: `KeyVault.storageKey('license-store')`. */
  readonly storageKey: Uint8Array;
  /**
   * The rollback counter. Default: a {@link FileRollbackCounter} in `counterFile`. A counter
   * passed here is not closed by {@link LicenseStore.close}.
   */
  readonly counter?: RollbackCounter;
  /**
   * Where the default file-backed counter lives; default `<dir>/rollback.kwc`. Put it on
   * another file system than the store so that restoring the store directory alone is
   * detected (see {@link RollbackCounter}).
   */
  readonly counterFile?: string;
  /** Largest license file accepted, on write and on read; default 256 KiB. */
  readonly maxLicenseBytes?: number;
  /**
   * Appended journal frames that trigger a compaction, at least; the threshold is the
   * larger of this and half the number of licenses. Default 256.
   */
  readonly compactAfterFrames?: number;
  /**
   * The file system every file of the store (and of the default counter) goes through;
   * default {@link NODE_FS}. Injectable for tests (fault injection).
   */
  readonly fs?: FileSystem;
}

/** One license in memory. */
interface Slot {
  readonly entry: IndexEntry;
  readonly tag: Buffer;
  readonly hex: string;
}

const LICENSE_NAME_RE = /^([0-9a-f]{32})\.kwl$/;
const TEMP_NAME_RE = /^\..+\.[0-9a-f]{12}\.tmp$/;
const STORE_TEMP_NAME_RE = /^\.(index\.kwj|store\.kwh)\.[0-9a-f]{12}\.tmp$/;
const MAX_GET_RETRIES = 3;

/**
 * The device's persistent license store: one AES-256-GCM file per license under a
 * device-bound key, an authenticated index journal for fast open and O(1) lookups, an
 * anchor and a rollback counter against restored copies, and a process lock.
 * docs/store.md describes the formats and the crash-safety argument.
 *
 * - Open reads the header, counter, anchor and journal and lists the license directory;
 *   it decrypts no license file unless it must repair (a rebuild, or the one change a
 *   crash interrupted). Each license file is decrypted and verified on {@link get}.
 * - Writes are serialized in a queue. Each resolves once durable: anchor, license file,
 *   journal and counter written and synced, in that order.
 * - A damaged, foreign or rolled-back license file fails alone, with a coded error, and
 *   is reported in {@link problems}; the store deletes nothing it did not write itself.
 * - After an I/O failure in the middle of a change, the store refuses further writes
 *   (IO_FAILED) until it is closed and opened again, which completes or discards the change.
 */
export class LicenseStore {
  private readonly byId = new Map<string, Slot>();
  private readonly byTag = new Map<string, Slot>();
  private readonly kidIndex = new Map<string, Set<Slot>>();
  private readonly contentIndex = new Map<string, Set<Slot>>();
  private readonly found: StoreProblem[] = [];
  /** Tags with a change under way (a concurrent get waits for it). */
  private readonly writing = new Set<string>();
  private digest: StateDigest;
  private seq = 0;
  private tail: Promise<void> = Promise.resolve();
  private failure: KeywardenError | undefined;
  private closed = false;

  private constructor(
    readonly dir: string,
    private readonly keys: StoreKeys,
    private readonly storeId: Buffer,
    private readonly lock: StoreLock,
    private readonly anchor: Anchor,
    private journal: Journal | undefined,
    private readonly counter: RollbackCounter,
    private readonly ownsCounter: boolean,
    private readonly counterName: string,
    private readonly maxLicenseBytes: number,
    private readonly compactAfterFrames: number,
    private readonly fs: FileSystem,
  ) {
    this.digest = StateDigest.empty(keys.digest);
  }

  /**
   * Opens (or creates) the store in `opts.dir`. Throws STORE_LOCKED when another process
   * holds it, STORE_FOREIGN_DEVICE when it was made under another storage key (copied from
   * another device), STORE_TAMPERED when its header is damaged, IO_FAILED when the disk
   * fails. Damage to the index, anchor, counter or license files does not throw: it is
   * repaired where possible and listed in {@link problems}.
   */
  static async open(opts: LicenseStoreOptions): Promise<LicenseStore> {
    const keys = deriveStoreKeys(opts.storageKey);
    const maxLicenseBytes = opts.maxLicenseBytes ?? DEFAULT_MAX_LICENSE_BYTES;
    if (!Number.isSafeInteger(maxLicenseBytes) || maxLicenseBytes < LICENSE_MIN_BYTES) {
      throw kwError('INITIALIZATION_FAILED', 'maxLicenseBytes must be a byte count', {
        maxLicenseBytes,
      });
    }
    const compactAfterFrames = opts.compactAfterFrames ?? DEFAULT_COMPACT_AFTER_FRAMES;
    if (!Number.isSafeInteger(compactAfterFrames) || compactAfterFrames < 1) {
      throw kwError('INITIALIZATION_FAILED', 'compactAfterFrames must be a positive count', {
        compactAfterFrames,
      });
    }
    const fs = opts.fs ?? NODE_FS;
    const dir = path.resolve(opts.dir);
    try {
      await fs.mkdir(dir, { recursive: true, mode: 0o700 });
      await fs.chmod(dir, 0o700);
    } catch (err) {
      throw kwError('IO_FAILED', `cannot create the license store ${dir}`, { dir }, err);
    }
    const lock = await StoreLock.acquire(path.join(dir, STORE_FILES.lock), fs);
    const closers: { close(): Promise<void> }[] = [];
    try {
      const files = (name: string) => path.join(dir, name);
      await removeTempFiles(fs, dir);
      let header = await readHeader(files(STORE_FILES.header), keys, fs);
      let created = false;
      if (!header) {
        if (await hasStoreFiles(fs, dir)) {
          throw kwError(
            'STORE_TAMPERED',
            'the license store header is missing, but the store has files',
            { dir },
          );
        }
        header = await createHeader(files(STORE_FILES.header), keys, fs);
        created = true;
      }
      const licDir = files(STORE_FILES.licenses);
      try {
        await fs.mkdir(licDir, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'EEXIST') throw err;
        });
        await fs.chmod(licDir, 0o700);
        await syncDirectory(dir, fs);
      } catch (err) {
        throw kwError('IO_FAILED', `cannot create ${licDir}`, { dir: licDir }, err);
      }
      const counterFile = path.resolve(opts.counterFile ?? files(STORE_FILES.counter));
      const counter =
        opts.counter ??
        new FileRollbackCounter({ file: counterFile, storageKey: opts.storageKey, fs });
      if (!opts.counter) closers.push(counter);
      const anchor = await Anchor.open(files(STORE_FILES.anchor), keys, header.storeId, fs);
      closers.push(anchor);
      const { replay, journal } = await Journal.open(
        files(STORE_FILES.journal),
        keys,
        header.storeId,
        fs,
      );
      if (journal) closers.push(journal);
      const store = new LicenseStore(
        dir,
        keys,
        header.storeId,
        lock,
        anchor,
        journal,
        counter,
        !opts.counter,
        opts.counter ? `${counter.kind} rollback counter` : counterFile,
        maxLicenseBytes,
        compactAfterFrames,
        fs,
      );
      closers.push({ close: async () => store.journal?.close() });
      await store.recover(created, replay);
      return store;
    } catch (err) {
      for (const c of closers) await c.close().catch(() => undefined);
      await lock.release().catch(() => undefined);
      throw err;
    }
  }

  /**
   * What the store found wrong since it was opened: damaged, foreign or rolled-back files
   * (found at open, or by {@link get}), a rebuilt index, a counter that did not verify. A
   * problem with a license goes away when that license is put again or removed.
   */
  get problems(): readonly StoreProblem[] {
    return [...this.found];
  }

  /** Number of licenses. */
  get size(): number {
    return this.byId.size;
  }

  /**
   * Stores a license, durably when the promise resolves. A license with the same id is
   * replaced (a renewal): its usage is kept and its generation rises. A license the store
   * refused as rolled back starts again with fresh usage. STORE_TOO_LARGE when the license
   * file would exceed maxLicenseBytes (or meta 16 KiB), LICENSE_PROCESSING_FAILED when the
   * record is malformed.
   */
  async put(record: LicenseRecord): Promise<void> {
    this.ensureOpen();
    const rec = normalizeRecord(record);
    await this.enqueue(async () => {
      const tag = fileTagOf(this.keys, rec.id);
      const hex = tag.toString('hex');
      const prev = this.byTag.get(hex);
      const s = this.seq + 1;
      const newGen = prev ? prev.entry.usage.generation + 1 : s;
      const usage =
        prev && !prev.entry.refused
          ? freezeUsage({ ...prev.entry.usage, generation: newGen })
          : freshUsage(newGen);
      await this.writeLicense(tag, prev, { ...rec, usage, seq: s });
    });
  }

  /**
   * Reads, decrypts and verifies a license. LICENSE_NOT_FOUND when there is none;
   * STORE_TAMPERED when its file is damaged, edited, missing or from another store;
   * STORE_FOREIGN_DEVICE when the file was made on another device; STORE_ROLLBACK when the
   * file is an older (or newer) copy than the index records; STORE_TOO_LARGE when the file
   * exceeds maxLicenseBytes. Every such error is also added to {@link problems}.
   */
  async get(id: string): Promise<StoredLicense> {
    this.ensureOpen();
    for (let attempt = 0; ; attempt++) {
      const slot = this.byId.get(id);
      if (!slot) throw notFound(id);
      try {
        const c = await this.readVerified(slot);
        return {
          id: c.id,
          kids: c.kids,
          contentId: c.contentId,
          meta: c.meta,
          body: c.body,
          usage: c.usage,
        };
      } catch (err) {
        // A change of this license was under way: the file and the index may disagree
        // for a moment. Let it finish and look again.
        if (this.writing.has(slot.hex) && attempt < MAX_GET_RETRIES) {
          await this.tail;
          continue;
        }
        throw this.report(slot, err);
      }
    }
  }

  /** The index entry of a license, without reading its file. */
  entry(id: string): IndexEntry | undefined {
    this.ensureOpen();
    return this.byId.get(id)?.entry;
  }

  /** Licenses that carry the key id (32 hex digits, any case). O(1). */
  byKid(kidHex: string): IndexEntry[] {
    this.ensureOpen();
    return entriesOf(this.kidIndex.get(kidHex.toLowerCase()));
  }

  /** Licenses for the content id. O(1). */
  byContent(contentId: string): IndexEntry[] {
    this.ensureOpen();
    return entriesOf(this.contentIndex.get(contentId));
  }

  /** Every license, in insertion order. */
  list(): IndexEntry[] {
    this.ensureOpen();
    return [...this.byId.values()].map((s) => s.entry);
  }

  /**
   * Changes a license's usage, durably when the promise resolves. `update` receives the
   * current (verified) usage and returns the fields to change; a field set to undefined is
   * cleared. The generation rises by one. Fails like {@link get} when the license cannot be
   * read, and with LICENSE_PROCESSING_FAILED when a field is malformed. `update` runs in
   * the write queue, so concurrent updates of one license do not lose each other.
   */
  async updateUsage(id: string, update: (usage: UsageState) => UsagePatch): Promise<UsageState> {
    this.ensureOpen();
    return this.enqueue(async () => {
      const slot = this.byId.get(id);
      if (!slot) throw notFound(id);
      let current: LicenseFileContent;
      try {
        current = await this.readVerified(slot);
      } catch (err) {
        throw this.report(slot, err);
      }
      const patched = applyUsagePatch(current.usage, update(current.usage), id);
      const usage = freezeUsage({ ...patched, generation: current.usage.generation + 1 });
      await this.writeLicense(slot.tag, slot, { ...current, usage, seq: this.seq + 1 });
      return usage;
    });
  }

  /** Removes a license and its file, durably when the promise resolves. LICENSE_NOT_FOUND. */
  async remove(id: string): Promise<void> {
    this.ensureOpen();
    await this.enqueue(async () => {
      const slot = this.byId.get(id);
      if (!slot) throw notFound(id);
      const s = this.seq + 1;
      const prevGen = digestGeneration(slot.entry);
      const digest = this.digest.clone();
      if (prevGen) digest.toggle(slot.tag, prevGen);
      await this.change(
        { seq: s, op: { kind: 'del', tag: slot.tag, prevGen }, digest },
        slot.hex,
        async () => {
          const file = this.licensePath(slot.hex);
          await this.fs.unlink(file).catch((err: NodeJS.ErrnoException) => {
            if (err.code !== 'ENOENT') throw ioError(`cannot remove ${file}`, err);
          });
          await syncDirectory(this.licenseDir, this.fs).catch((err) => {
            throw ioError(`cannot sync ${this.licenseDir}`, err);
          });
        },
        { t: 'd', s, f: slot.hex },
        () => {
          this.uninstall(slot);
          this.forgetProblems(slot);
        },
      );
    });
  }

  /** Waits for queued writes, closes the files and releases the lock. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Jobs queued before close() still run (a compaction may queue itself meanwhile).
    for (let t = this.tail; ; t = this.tail) {
      await t;
      if (t === this.tail) break;
    }
    await this.journal?.close();
    await this.anchor.close();
    if (this.ownsCounter) await this.counter.close();
    await this.lock.release();
  }

  // ---- opening and repair ----

  /**
   * Brings the in-memory index in line with the files after open (docs/store.md, "Open").
   * The journal is trusted when it is authenticated, not older than the rollback counter,
   * and agrees with the anchor's digest. A change the anchor announces but the journal
   * lacks is settled by reading its one license file: completed if it landed, aborted if
   * not, in place, without a new sequence number, so a crash during the repair leaves the
   * same situation for the next open. A journal that cannot be trusted is rebuilt from the
   * license files and checked against the anchor.
   */
  private async recover(created: boolean, replay: JournalReplay): Promise<void> {
    const listing = await this.listLicenseDir();
    const counter = await this.readCounter();
    let anchor = this.anchor.initial;
    if (
      created ||
      (replay.status === 'missing' &&
        listing.size === 0 &&
        (anchor?.op.kind ?? 'checkpoint') === 'checkpoint')
    ) {
      // A new store, or one whose creation a crash interrupted before anything was stored.
      await this.rewrite(new Map(), Math.max(counter ?? 0, anchor?.seq ?? 0));
      return;
    }
    if (!anchor) {
      const missing = this.anchor.status === 'missing';
      this.problem(
        missing ? 'STORE_CORRUPT' : 'STORE_TAMPERED',
        this.anchor.file,
        missing ? 'the store anchor is missing' : 'the store anchor does not verify',
      );
    } else if (counter !== undefined && anchor.seq < counter) {
      this.problem('STORE_ROLLBACK', this.anchor.file, 'the anchor is older than the counter');
      anchor = undefined;
    }
    // The announced change may be unfinished only if the counter, advanced last, has not
    // reached it. An unknown counter vouches for nothing.
    const mayBeUnfinished = !!anchor && counter !== undefined && counter < anchor.seq;

    const state = replay.entries;
    let seq = replay.seq;
    /** Writes that settle the state, in order; none when the files already agree. */
    let settle: { anchor?: AnchorState; frame?: JournalFrame } | undefined;
    let distrust: { code: 'STORE_CORRUPT' | 'STORE_ROLLBACK'; why: string } | undefined;
    const damaged = replay.tornBytes > 0 ? 'STORE_CORRUPT' : 'STORE_ROLLBACK';
    if (replay.status !== 'ok') {
      distrust = { code: 'STORE_CORRUPT', why: replay.reason ?? 'the index is unreadable' };
    } else if (counter !== undefined && replay.seq < counter) {
      distrust = { code: damaged, why: 'the index is older than the rollback counter' };
    } else if (!anchor || anchor.seq < replay.seq) {
      if (anchor) {
        this.problem('STORE_ROLLBACK', this.anchor.file, 'the anchor is older than the index');
      }
      settle = { anchor: { seq, op: { kind: 'checkpoint' }, digest: digestOf(this.keys, state) } };
    } else if (anchor.seq === replay.seq) {
      if (!sameDigest(digestOf(this.keys, state), anchor.digest)) {
        distrust = { code: 'STORE_CORRUPT', why: 'the index does not match the anchor' };
      }
    } else if (anchor.seq > replay.seq + 1 || !mayBeUnfinished) {
      distrust = { code: damaged, why: 'the index is older than the anchor' };
    } else {
      // The change the anchor announces did not reach the journal: did it reach its file?
      const frame = await this.resolveInterrupted(anchor, listing, state);
      const expected = frame ? anchor.digest : revert(anchor);
      seq = anchor.seq;
      if (expected && !sameDigest(digestOf(this.keys, state), expected)) {
        distrust = { code: 'STORE_CORRUPT', why: 'the index does not match the anchor' };
      } else if (frame) {
        settle = { frame }; // landed: record it, as the change would have
      } else {
        // Did not land (or was itself such a settlement): the anchor is made to say so,
        // then the journal catches up.
        settle = {
          anchor: { seq, op: { kind: 'checkpoint' }, digest: digestOf(this.keys, state) },
          frame: { t: 'n', s: seq },
        };
      }
    }

    if (distrust) {
      this.problem(
        distrust.code,
        this.journalPath,
        `${distrust.why}; rebuilt from the license files`,
      );
      const rebuilt = await this.rebuild(
        listing,
        anchor,
        mayBeUnfinished,
        Math.max(seq, counter ?? 0),
      );
      this.reportRefused(rebuilt.state);
      await this.rewrite(rebuilt.state, rebuilt.seq);
      return;
    }
    if (await this.reconcile(state, listing)) {
      this.reportRefused(state);
      await this.rewrite(state, Math.max(seq, anchor?.seq ?? 0, counter ?? 0));
      return;
    }
    this.reportRefused(state);
    if (settle?.anchor) await this.anchor.write(settle.anchor);
    if (settle?.frame) await this.journal!.append(settle.frame);
    if (settle || counter === undefined || counter < seq) await this.counter.advance(seq);
    this.load(state, seq);
  }

  /** Adds a problem for each entry the store refuses. */
  private reportRefused(state: Map<string, JournalEntry>): void {
    for (const e of state.values()) {
      if (!e.refused) continue;
      this.found.push({
        id: e.id,
        file: this.licensePath(e.file),
        error: kwError('STORE_ROLLBACK', `license ${e.id} is refused: its freshness is unknown`, {
          id: e.id,
        }),
      });
    }
  }

  /**
   * Settles the change a crash interrupted (anchor written, journal not) by reading the
   * one license file it concerns. When it landed, applies it to `state` and returns the
   * journal frame that records it; undefined when it did not land.
   */
  private async resolveInterrupted(
    anchor: AnchorState,
    listing: ReadonlySet<string>,
    state: Map<string, JournalEntry>,
  ): Promise<JournalFrame | undefined> {
    const op = anchor.op;
    if (op.kind === 'checkpoint') return undefined;
    const hex = op.tag.toString('hex');
    if (op.kind === 'del') {
      if (listing.has(hex)) return undefined;
      state.delete(hex);
      return { t: 'd', s: anchor.seq, f: hex };
    }
    if (!listing.has(hex)) return undefined;
    const content = await this.readFile(op.tag, hex).catch(() => undefined);
    if (!content || content.seq !== anchor.seq || content.usage.generation !== op.newGen) {
      return undefined;
    }
    const entry = journalEntryOf(content, hex);
    state.set(hex, entry);
    return { t: 'p', s: anchor.seq, e: entry };
  }

  /**
   * Checks the journal's entries against the license directory: an entry without a file
   * is dropped (STORE_TAMPERED), a file without an entry is left alone and reported (it is
   * an older copy of a removed license, or not the store's). Returns whether anything
   * changed.
   */
  private async reconcile(
    state: Map<string, JournalEntry>,
    listing: ReadonlySet<string>,
  ): Promise<boolean> {
    let changed = false;
    for (const [hex, e] of state) {
      if (listing.has(hex)) continue;
      this.found.push({
        id: e.id,
        file: this.licensePath(hex),
        error: kwError('STORE_TAMPERED', `the file of license ${e.id} is missing`, { id: e.id }),
      });
      state.delete(hex);
      changed = true;
    }
    for (const hex of listing) {
      if (state.has(hex)) continue;
      const file = this.licensePath(hex);
      try {
        const content = await this.readFile(Buffer.from(hex, 'hex'), hex);
        this.found.push({
          id: content.id,
          file,
          error: kwError(
            'STORE_ROLLBACK',
            `license file ${file} is not in the index: a restored copy of a removed license`,
            { id: content.id, file },
          ),
        });
      } catch (err) {
        this.found.push({ file, error: asStoreError(err, file) });
      }
    }
    return changed;
  }

  /**
   * Rebuilds the index from the license files, after the journal proved unusable. The
   * rebuilt set is checked against the anchor's digest: entries in buckets that differ
   * cannot be vouched for and are refused (STORE_ROLLBACK). Without an anchor, all are.
   * The digest before the anchor's change is accepted too only when `mayBeUnfinished`.
   */
  private async rebuild(
    listing: ReadonlySet<string>,
    anchor: AnchorState | undefined,
    mayBeUnfinished: boolean,
    floorSeq: number,
  ): Promise<{ state: Map<string, JournalEntry>; seq: number }> {
    const state = new Map<string, JournalEntry>();
    let seq = floorSeq;
    for (const hex of listing) {
      const file = this.licensePath(hex);
      try {
        const content = await this.readFile(Buffer.from(hex, 'hex'), hex);
        state.set(hex, journalEntryOf(content, hex));
        seq = Math.max(seq, content.seq);
      } catch (err) {
        this.found.push({ file, error: asStoreError(err, file) });
      }
    }
    let expected: StateDigest | undefined;
    if (anchor) {
      seq = Math.max(seq, anchor.seq);
      const op = anchor.op;
      const hex = op.kind === 'checkpoint' ? '' : op.tag.toString('hex');
      const landed =
        !mayBeUnfinished ||
        op.kind === 'checkpoint' ||
        (op.kind === 'del' ? !listing.has(hex) : state.get(hex)?.usage.generation === op.newGen);
      expected = landed ? anchor.digest : revert(anchor);
    }
    const actual = digestOf(this.keys, state);
    const suspect = new Set(expected ? actual.differingBuckets(expected) : []);
    for (const [hex, e] of state) {
      if (expected && !suspect.has(Buffer.from(hex, 'hex')[0] ?? 0)) continue;
      state.set(hex, { ...e, refused: 'rollback' });
    }
    return { state, seq };
  }

  /** Reads the rollback counter; undefined (and a problem) when it does not verify. */
  private async readCounter(): Promise<number | undefined> {
    try {
      return await this.counter.read();
    } catch (err) {
      if (!isKeywardenError(err, 'STORE_TAMPERED')) throw err;
      this.found.push({ file: this.counterName, error: err });
      return undefined;
    }
  }

  /**
   * Makes `state` the store's durable state at a new sequence number: anchor, then a new
   * journal (one snapshot), then the counter. At creation and after a rebuild or reconcile.
   */
  private async rewrite(state: Map<string, JournalEntry>, floorSeq: number): Promise<void> {
    const seq = floorSeq + 1;
    const digest = digestOf(this.keys, state);
    await this.anchor.write({ seq, op: { kind: 'checkpoint' }, digest });
    await this.journal?.close();
    this.journal = undefined;
    this.journal = await Journal.create(
      this.journalPath,
      this.keys,
      this.storeId,
      seq,
      state.values(),
      this.fs,
    );
    await this.counter.advance(seq);
    this.load(state, seq);
  }

  /** Fills the in-memory index. */
  private load(state: Map<string, JournalEntry>, seq: number): void {
    for (const e of state.values()) this.install(e);
    this.seq = seq;
    this.digest = digestOf(this.keys, state);
  }

  /** The license files in the directory; removes temporary files of interrupted writes. */
  private async listLicenseDir(): Promise<Set<string>> {
    let names: string[];
    try {
      names = await this.fs.readdir(this.licenseDir);
    } catch (err) {
      throw ioError(`cannot list ${this.licenseDir}`, err);
    }
    const out = new Set<string>();
    for (const name of names) {
      const m = LICENSE_NAME_RE.exec(name);
      if (m) out.add(m[1]!);
      // A temporary file of a write that never committed: it was never part of the store.
      else if (TEMP_NAME_RE.test(name)) {
        await this.fs.unlink(path.join(this.licenseDir, name)).catch(() => undefined);
      }
    }
    return out;
  }

  // ---- writing ----

  /** Writes a license file with new content and records it (put and updateUsage). */
  private async writeLicense(
    tag: Buffer,
    prev: Slot | undefined,
    content: LicenseFileContent,
  ): Promise<void> {
    const hex = tag.toString('hex');
    const bytes = encodeLicenseFile(this.keys, this.storeId, content);
    if (bytes.length > this.maxLicenseBytes) {
      throw kwError(
        'STORE_TOO_LARGE',
        `license ${content.id} needs ${bytes.length} bytes; the limit is ${this.maxLicenseBytes}`,
        { id: content.id, bytes: bytes.length, limit: this.maxLicenseBytes },
      );
    }
    const prevGen = prev ? digestGeneration(prev.entry) : 0;
    const newGen = content.usage.generation;
    const digest = this.digest.clone();
    if (prevGen) digest.toggle(tag, prevGen);
    digest.toggle(tag, newGen);
    const entry = journalEntryOf(content, hex);
    await this.change(
      { seq: content.seq, op: { kind: 'put', tag, prevGen, newGen }, digest },
      hex,
      () => writeFileAtomic(this.licensePath(hex), bytes, 0o600, this.fs),
      { t: 'p', s: content.seq, e: entry },
      () => {
        if (prev) this.uninstall(prev);
        this.install(entry);
        this.forgetProblems({ hex, entry: { id: content.id } });
      },
    );
  }

  /**
   * One durable change, in the order the crash-safety argument needs: the anchor announces
   * it, the license file changes, the journal records it, the counter follows; then
   * `commit` updates the in-memory index. A failure after the anchor leaves the disk in a
   * state only a reopen can settle, so the store then refuses further writes.
   */
  private async change(
    anchor: AnchorState,
    hex: string,
    apply: () => Promise<void>,
    frame: JournalFrame,
    commit: () => void,
  ): Promise<void> {
    this.writing.add(hex);
    try {
      await this.anchor.write(anchor);
      this.seq = anchor.seq;
      await apply();
      await this.journal!.append(frame);
      await this.counter.advance(anchor.seq);
      this.digest = anchor.digest;
      commit();
    } catch (err) {
      this.failure = asStoreError(err, this.dir);
      throw this.failure;
    } finally {
      this.writing.delete(hex);
    }
    this.scheduleCompaction();
  }

  /** Queues a compaction when the journal has grown past its threshold. */
  private scheduleCompaction(): void {
    const journal = this.journal;
    if (!journal || journal.frames < Math.max(this.compactAfterFrames, this.byId.size / 2)) {
      return;
    }
    this.enqueue(async () => {
      if (this.journal !== journal || this.closed) return; // compacted already, or closing
      const entries = [...this.byId.values()].map((s) => journalEntryOf(s.entry, s.hex));
      try {
        this.journal = await Journal.create(
          this.journalPath,
          this.keys,
          this.storeId,
          this.seq,
          entries,
          this.fs,
        );
        await journal.close();
      } catch (err) {
        // The rename may have happened: appends to the old handle would be lost.
        this.failure = asStoreError(err, this.journalPath);
        this.found.push({ file: this.journalPath, error: this.failure });
      }
    }).catch(() => undefined);
  }

  /** Runs `job` after every queued write. */
  private enqueue<T>(job: () => Promise<T>): Promise<T> {
    const run = this.tail.then(() => {
      if (this.failure) {
        throw kwError(
          'IO_FAILED',
          'an earlier write of the license store failed; close and reopen it',
          { dir: this.dir },
          this.failure,
        );
      }
      return job();
    });
    this.tail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  // ---- reading ----

  /** Reads and verifies a license file against its index entry. */
  private async readVerified(slot: Slot): Promise<LicenseFileContent> {
    if (slot.entry.refused) {
      throw kwError(
        'STORE_ROLLBACK',
        `license ${slot.entry.id} is refused: the store could not vouch for its freshness`,
        { id: slot.entry.id },
      );
    }
    const content = await this.readFile(slot.tag, slot.hex);
    const current = this.byTag.get(slot.hex)?.entry ?? slot.entry;
    const fileGen = content.usage.generation;
    const indexGen = current.usage.generation;
    if (fileGen !== indexGen) {
      throw kwError(
        'STORE_ROLLBACK',
        fileGen < indexGen
          ? `license ${current.id} is an older copy (generation ${fileGen}, expected ${indexGen})`
          : `license ${current.id} is newer than the index (generation ${fileGen}, expected ${indexGen})`,
        { id: current.id, generation: fileGen, expected: indexGen },
      );
    }
    return content;
  }

  /** Reads and decrypts one license file (size-limited). */
  private async readFile(tag: Buffer, hex: string): Promise<LicenseFileContent> {
    const file = this.licensePath(hex);
    let bytes: Buffer;
    try {
      const h = await this.fs.open(file, 'r');
      try {
        const size = (await h.stat()).size;
        if (size > this.maxLicenseBytes) {
          throw kwError(
            'STORE_TOO_LARGE',
            `license file ${file} has ${size} bytes; the limit is ${this.maxLicenseBytes}`,
            { file, bytes: size, limit: this.maxLicenseBytes },
          );
        }
        bytes = Buffer.alloc(size);
        const { bytesRead } = await h.read(bytes, 0, size, 0);
        bytes = bytes.subarray(0, bytesRead);
      } finally {
        await h.close();
      }
    } catch (err) {
      if (isKeywardenError(err)) throw err;
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw kwError('STORE_TAMPERED', `the license file ${file} is missing`, { file });
      }
      throw ioError(`cannot read ${file}`, err);
    }
    return decodeLicenseFile(this.keys, this.storeId, tag, bytes, file);
  }

  // ---- in-memory index ----

  private install(e: JournalEntry): void {
    const entry: IndexEntry = Object.freeze({
      id: e.id,
      kids: Object.freeze([...e.kids]),
      contentId: e.contentId,
      meta: deepFreeze(e.meta),
      usage: freezeUsage(e.usage),
      ...(e.refused && { refused: e.refused }),
    });
    const slot: Slot = { entry, tag: Buffer.from(e.file, 'hex'), hex: e.file };
    this.byId.set(entry.id, slot);
    this.byTag.set(slot.hex, slot);
    for (const kid of entry.kids) addTo(this.kidIndex, kid, slot);
    addTo(this.contentIndex, entry.contentId, slot);
  }

  private uninstall(slot: Slot): void {
    this.byId.delete(slot.entry.id);
    this.byTag.delete(slot.hex);
    for (const kid of slot.entry.kids) removeFrom(this.kidIndex, kid, slot);
    removeFrom(this.contentIndex, slot.entry.contentId, slot);
  }

  // ---- problems ----

  /** Records a license's read failure in the problems (once) and returns the coded error. */
  private report(slot: Slot, err: unknown): KeywardenError {
    const file = this.licensePath(slot.hex);
    const error = asStoreError(err, file);
    if (error.code === 'LICENSE_NOT_FOUND' || error.code === 'IO_FAILED') return error;
    const known = this.found.some(
      (p) => p.file === file && p.id === slot.entry.id && p.error.code === error.code,
    );
    if (!known) this.found.push({ id: slot.entry.id, file, error });
    return error;
  }

  private problem(
    code: 'STORE_CORRUPT' | 'STORE_TAMPERED' | 'STORE_ROLLBACK',
    file: string,
    message: string,
  ): void {
    this.found.push({ file, error: kwError(code, message, { file }) });
  }

  private forgetProblems(slot: { hex: string; entry: { id: string } }): void {
    const file = this.licensePath(slot.hex);
    for (let i = this.found.length - 1; i >= 0; i--) {
      const p = this.found[i]!;
      if (p.file === file || p.id === slot.entry.id) this.found.splice(i, 1);
    }
  }

  // ---- helpers ----

  private ensureOpen(): void {
    if (this.closed) throw closedError();
  }

  private get licenseDir(): string {
    return path.join(this.dir, STORE_FILES.licenses);
  }

  private get journalPath(): string {
    return path.join(this.dir, STORE_FILES.journal);
  }

  private licensePath(hex: string): string {
    return path.join(this.licenseDir, `${hex}.kwl`);
  }
}

/** Removes temporary files of header and journal writes that a crash interrupted. */
async function removeTempFiles(fs: FileSystem, dir: string): Promise<void> {
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    if (STORE_TEMP_NAME_RE.test(name)) await fs.unlink(path.join(dir, name)).catch(() => undefined);
  }
}

/** True when the directory holds any file of a store (the header excepted). */
async function hasStoreFiles(fs: FileSystem, dir: string): Promise<boolean> {
  for (const name of [STORE_FILES.journal, STORE_FILES.anchor]) {
    if (
      await fs.stat(path.join(dir, name)).then(
        (s) => s.size > 0,
        () => false,
      )
    )
      return true;
  }
  const names = await fs.readdir(path.join(dir, STORE_FILES.licenses)).catch(() => [] as string[]);
  return names.some((n) => LICENSE_NAME_RE.test(n));
}

/** The generation an entry contributes to the digest; 0 (absent) when refused. */
function digestGeneration(e: { usage: UsageState; refused?: 'rollback' }): number {
  return e.refused ? 0 : e.usage.generation;
}

function digestOf(keys: StoreKeys, state: Map<string, JournalEntry>): StateDigest {
  const pairs: { tag: Buffer; generation: number }[] = [];
  for (const [hex, e] of state) {
    const generation = digestGeneration(e);
    if (generation) pairs.push({ tag: Buffer.from(hex, 'hex'), generation });
  }
  return StateDigest.of(keys.digest, pairs);
}

/** The digest before the anchor's change; undefined when it cannot be told (checkpoint). */
function revert(anchor: AnchorState): StateDigest | undefined {
  const op = anchor.op;
  if (op.kind === 'checkpoint') return undefined;
  const d = anchor.digest.clone();
  if (op.kind === 'put') d.toggle(op.tag, op.newGen);
  if (op.prevGen) d.toggle(op.tag, op.prevGen);
  return d;
}

function sameDigest(a: StateDigest, b: StateDigest): boolean {
  return a.differingBuckets(b).length === 0;
}

function journalEntryOf(
  e: {
    id: string;
    kids: readonly string[];
    contentId: string;
    meta: Readonly<Record<string, unknown>>;
    usage: UsageState;
    refused?: 'rollback';
  },
  hex: string,
): JournalEntry {
  return {
    id: e.id,
    kids: e.kids,
    contentId: e.contentId,
    meta: e.meta,
    usage: e.usage,
    file: hex,
    ...(e.refused && { refused: e.refused }),
  };
}

function entriesOf(set: Set<Slot> | undefined): IndexEntry[] {
  if (!set) return [];
  const out: IndexEntry[] = [];
  for (const s of set) out.push(s.entry);
  return out;
}

function addTo(index: Map<string, Set<Slot>>, key: string, slot: Slot): void {
  let set = index.get(key);
  if (!set) index.set(key, (set = new Set()));
  set.add(slot);
}

function removeFrom(index: Map<string, Set<Slot>>, key: string, slot: Slot): void {
  const set = index.get(key);
  if (!set) return;
  set.delete(slot);
  if (set.size === 0) index.delete(key);
}

function notFound(id: string): KeywardenError {
  return kwError('LICENSE_NOT_FOUND', `no stored license has id ${id}`, { id });
}

function closedError(): KeywardenError {
  return kwError('IO_FAILED', 'the license store is closed');
}

function ioError(message: string, cause: unknown): KeywardenError {
  return kwError('IO_FAILED', `${message}: ${(cause as Error).message}`, {}, cause);
}

/** A coded error for a file problem; anything uncoded becomes IO_FAILED. */
function asStoreError(err: unknown, file: string): KeywardenError {
  return isKeywardenError(err)
    ? err
    : kwError('IO_FAILED', `cannot read ${file}: ${(err as Error).message}`, { file }, err);
}

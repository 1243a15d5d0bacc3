import type { FileSystem } from '../io/fs.js';
import { FILE_TAG_BYTES, STORE_ID_BYTES, sameBytes, type StoreKeys } from './keys.js';
import { DIGEST_BYTES, StateDigest } from './digest.js';
import { SlotFile, type SlotFileStatus } from './slot-file.js';

/**
 * The change an anchor announces: written before the change touches any other file, so that
 * after a crash the store knows which one license file may be newer (put) or gone (del)
 * without the index journal saying so.
 */
export type AnchorOp =
  | {
      readonly kind: 'put';
      readonly tag: Buffer;
      readonly prevGen: number;
      readonly newGen: number;
    }
  | { readonly kind: 'del'; readonly tag: Buffer; readonly prevGen: number }
  /** A rewrite of the whole index (open-time repair); changes no license file. */
  | { readonly kind: 'checkpoint' };

/** What an anchor holds. */
export interface AnchorState {
  /** Sequence number of the change (the newest the store has started). */
  readonly seq: number;
  /** That change. */
  readonly op: AnchorOp;
  /** Digest of the (file tag, generation) set once the change is complete. */
  readonly digest: StateDigest;
}

const MAGIC = 'KWAN';
const SLOT_BYTES = 4096;
const KINDS = ['put', 'del', 'checkpoint'] as const;
/** seq(8) storeId(16) kind(1) tag(16) prevGen(8) newGen(8) digest. */
const PAYLOAD_BYTES = 8 + STORE_ID_BYTES + 1 + FILE_TAG_BYTES + 8 + 8 + DIGEST_BYTES;

/**
 * The anchor `anchor.kwa`: a {@link SlotFile} (HMAC under a key derived from the storage
 * key) with the sequence number of the store's latest change, that change, and the state
 * digest. Every change rewrites it first, so it is never behind the journal; the rollback
 * counter is advanced last, so it is never ahead of either.
 */
export class Anchor {
  private constructor(
    private readonly slots: SlotFile,
    private readonly keys: StoreKeys,
    private readonly storeId: Uint8Array,
    /** What the anchor held at open; undefined when missing or unverifiable. */
    readonly initial: AnchorState | undefined,
  ) {}

  /** Opens (creating) the anchor file and reads its newest record. */
  static async open(
    file: string,
    keys: StoreKeys,
    storeId: Uint8Array,
    fs?: FileSystem,
  ): Promise<Anchor> {
    const slots = await SlotFile.open(file, {
      key: keys.anchor,
      magic: MAGIC,
      slotBytes: SLOT_BYTES,
      ...(fs && { fs }),
    });
    return new Anchor(slots, keys, storeId, decode(slots.read(), keys, storeId));
  }

  /** The anchor file. */
  get file(): string {
    return this.slots.file;
  }

  /** What the file held when opened ('ok' with a storeId mismatch reads as invalid). */
  get status(): SlotFileStatus {
    return this.initial ? 'ok' : this.slots.status === 'missing' ? 'missing' : 'invalid';
  }

  /** Writes a new anchor; durable when it resolves. */
  async write(state: AnchorState): Promise<void> {
    const p = Buffer.alloc(PAYLOAD_BYTES);
    p.writeBigUInt64BE(BigInt(state.seq), 0);
    p.set(this.storeId, 8);
    const op = state.op;
    p[24] = KINDS.indexOf(op.kind) + 1;
    if (op.kind !== 'checkpoint') {
      p.set(op.tag, 25);
      p.writeBigUInt64BE(BigInt(op.prevGen), 41);
      if (op.kind === 'put') p.writeBigUInt64BE(BigInt(op.newGen), 49);
    }
    p.set(state.digest.bytes, 57);
    await this.slots.write(p);
  }

  /** Closes the file. */
  async close(): Promise<void> {
    await this.slots.close();
  }
}

function decode(
  p: Buffer | undefined,
  keys: StoreKeys,
  storeId: Uint8Array,
): AnchorState | undefined {
  if (!p || p.length !== PAYLOAD_BYTES || !sameBytes(p.subarray(8, 24), storeId)) return undefined;
  const kind = KINDS[(p[24] ?? 0) - 1];
  const num = (off: number) => Number(p.readBigUInt64BE(off));
  const tag = Buffer.from(p.subarray(25, 41));
  let op: AnchorOp;
  if (kind === 'put') op = { kind, tag, prevGen: num(41), newGen: num(49) };
  else if (kind === 'del') op = { kind, tag, prevGen: num(41) };
  else if (kind === 'checkpoint') op = { kind };
  else return undefined;
  return { seq: num(0), op, digest: StateDigest.fromBytes(keys.digest, p.subarray(57)) };
}

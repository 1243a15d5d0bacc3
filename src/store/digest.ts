import { createCipheriv } from 'node:crypto';

/** Number of buckets; an entry's bucket is the first byte of its file tag. */
export const DIGEST_BUCKETS = 256;
/** Bytes per bucket. */
export const DIGEST_BUCKET_BYTES = 8;
/** Serialized size of a {@link StateDigest}. */
export const DIGEST_BYTES = DIGEST_BUCKETS * DIGEST_BUCKET_BYTES;

/**
 * A keyed digest of the store's set of (file tag, generation) pairs, kept in the anchor so
 * that a rebuild of the index from the license files can be checked against the last state
 * the store wrote. Each pair maps to a pseudo-random 64-bit value (one AES-256 block of
 * `tag[0..8] | generation` under a key derived from the storage key, truncated), XORed into
 * the bucket named by the tag's first byte. Adding and removing a pair is the same XOR, so
 * the digest follows every change in O(1).
 *
 * Without the key the values are unpredictable, so no set of old license files can be
 * chosen to reproduce a bucket. When a bucket differs, some entry in it was rolled back,
 * resurrected or deleted; 256 buckets narrow that to about 1/256 of the entries.
 */
export class StateDigest {
  private constructor(
    private readonly key: Uint8Array,
    readonly bytes: Buffer,
  ) {}

  /** An empty digest (no entries). */
  static empty(key: Uint8Array): StateDigest {
    return new StateDigest(key, Buffer.alloc(DIGEST_BYTES));
  }

  /** A digest read back from an anchor. */
  static fromBytes(key: Uint8Array, bytes: Uint8Array): StateDigest {
    if (bytes.length !== DIGEST_BYTES) throw new Error('internal: digest of the wrong size');
    return new StateDigest(key, Buffer.from(bytes));
  }

  /** The digest of many pairs, with one AES call for all of them. */
  static of(
    key: Uint8Array,
    pairs: Iterable<{ tag: Uint8Array; generation: number }>,
  ): StateDigest {
    const list = [...pairs];
    const d = StateDigest.empty(key);
    if (list.length === 0) return d;
    const blocks = Buffer.alloc(list.length * 16);
    list.forEach((p, i) => fillBlock(blocks, i * 16, p.tag, p.generation));
    const out = ecb(key, blocks);
    list.forEach((p, i) => d.xorBucket(p.tag[0] ?? 0, out, i * 16));
    return d;
  }

  /** Adds the pair if absent, removes it if present. */
  toggle(tag: Uint8Array, generation: number): this {
    const block = Buffer.alloc(16);
    fillBlock(block, 0, tag, generation);
    this.xorBucket(tag[0] ?? 0, ecb(this.key, block), 0);
    return this;
  }

  /** A copy, to prepare a change before it is committed. */
  clone(): StateDigest {
    return new StateDigest(this.key, Buffer.from(this.bytes));
  }

  /** Buckets in which this digest differs from `other`. */
  differingBuckets(other: StateDigest): number[] {
    const out: number[] = [];
    for (let b = 0; b < DIGEST_BUCKETS; b++) {
      const o = b * DIGEST_BUCKET_BYTES;
      if (this.bytes.compare(other.bytes, o, o + DIGEST_BUCKET_BYTES, o, o + DIGEST_BUCKET_BYTES)) {
        out.push(b);
      }
    }
    return out;
  }

  private xorBucket(bucket: number, src: Buffer, srcOff: number): void {
    const o = bucket * DIGEST_BUCKET_BYTES;
    for (let i = 0; i < DIGEST_BUCKET_BYTES; i++) {
      this.bytes[o + i] = this.bytes[o + i]! ^ src[srcOff + i]!;
    }
  }
}

function fillBlock(buf: Buffer, off: number, tag: Uint8Array, generation: number): void {
  buf.set(tag.subarray(0, 8), off);
  buf.writeBigUInt64BE(BigInt(generation), off + 8);
}

/** AES-256-ECB over whole blocks: each block is an independent PRP call (no chaining wanted). */
function ecb(key: Uint8Array, blocks: Buffer): Buffer {
  const c = createCipheriv('aes-256-ecb', key, null);
  c.setAutoPadding(false);
  return Buffer.concat([c.update(blocks), c.final()]);
}

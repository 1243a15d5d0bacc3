import { kwError } from '../../errors/index.js';
import { boxReader, type Box } from '../box.js';
import type { ByteReader } from '../bytes.js';
import { PIFF_UUIDS, type SampleEncryptionInfo, type Subsample } from '../cenc-types.js';
import { checkIvSize } from './protection.js';

/** senc flag: entries carry subsample maps (ISO/IEC 23001-7 §7.2.1). */
export const SENC_USE_SUBSAMPLES = 0x2;
/** PIFF sample encryption flag: AlgorithmID, IV size and KID override the track's (PIFF 1.1 §5.3.3). */
export const PIFF_SENC_OVERRIDE = 0x1;

/** Most entries one senc may declare (as many as a trun may hold samples). */
export const MAX_SENC_ENTRIES = 1 << 20;

/** The per-sample IV size of sample `index` (from tenc or its seig group). */
export type IvSizeOf = (index: number) => number;

/**
 * The per-sample encryption data of one track fragment (or flat track), flat so that it maps
 * straight into a SampleBatch: 16 IV bytes per sample (8-byte IVs zero-padded, §9.1), and
 * subsample pairs indexed by `subsampleStart`/`subsampleCount`.
 */
export interface SampleEncryptionTable {
  readonly count: number;
  readonly ivs: Uint8Array;
  /** IV size as stored (0 when the sample uses a constant IV). */
  readonly ivSizes: Uint8Array;
  readonly subsampleStart: Uint32Array;
  readonly subsampleCount: Uint32Array;
  /** Pairs: BytesOfClearData, BytesOfProtectedData. */
  readonly subsamples: Uint32Array;
}

/** PIFF's per-fragment override of the track defaults. */
export interface PiffOverride {
  readonly algorithm: number;
  readonly ivSize: number;
  readonly kid: Uint8Array;
}

/** A parsed 'senc' or PIFF sample encryption box. */
export interface SampleEncryptionBox {
  readonly flags: number;
  readonly table: SampleEncryptionTable;
  readonly piffOverride?: PiffOverride;
}

/** True for 'senc' or PIFF's sample encryption uuid box. */
export function isSampleEncryptionBox(box: Box): boolean {
  return box.type === 'senc' || (box.type === 'uuid' && box.uuid === PIFF_UUIDS.sampleEncryption);
}

/** Collects entries into growable flat arrays. */
export class SampleEncryptionTableBuilder {
  private ivs: Uint8Array;
  private ivSizes: Uint8Array;
  private starts: Uint32Array;
  private counts: Uint32Array;
  private subs = new Uint32Array(64);
  private subLength = 0;
  private n = 0;

  constructor(readonly capacity: number) {
    this.ivs = new Uint8Array(capacity * 16);
    this.ivSizes = new Uint8Array(capacity);
    this.starts = new Uint32Array(capacity);
    this.counts = new Uint32Array(capacity);
  }

  /** Reads one entry: IV, then (when `withSubsamples`) the subsample map. */
  read(r: ByteReader, ivSize: number, withSubsamples: boolean): void {
    const i = this.n++;
    if (i >= this.capacity)
      throw kwError('MEDIA_MALFORMED_BOX', `${r.context}: more entries than declared`, {
        box: r.context,
      });
    checkIvSize(ivSize, r.context);
    this.ivs.set(r.bytes(ivSize), i * 16);
    this.ivSizes[i] = ivSize;
    this.starts[i] = this.subLength / 2;
    if (!withSubsamples) return;
    const count = r.u16();
    r.need(count * 6, `${count} subsamples`);
    this.grow(count * 2);
    for (let k = 0; k < count; k++) {
      this.subs[this.subLength++] = r.u16();
      this.subs[this.subLength++] = r.u32();
    }
    this.counts[i] = count;
  }

  private grow(extra: number): void {
    if (this.subLength + extra <= this.subs.length) return;
    const next = new Uint32Array(Math.max(this.subs.length * 2, this.subLength + extra));
    next.set(this.subs.subarray(0, this.subLength));
    this.subs = next;
  }

  /** The table of the entries read so far. */
  build(): SampleEncryptionTable {
    const n = this.n;
    return {
      count: n,
      ivs: this.ivs.subarray(0, n * 16),
      ivSizes: this.ivSizes.subarray(0, n),
      subsampleStart: this.starts.subarray(0, n),
      subsampleCount: this.counts.subarray(0, n),
      subsamples: this.subs.subarray(0, this.subLength),
    };
  }
}

/** Reads the count of a senc-like box and checks it against the bytes left (each entry needs `minEntry`). */
function checkedCount(r: ByteReader, minEntry: number): number {
  const count = r.u32();
  r.need(count * minEntry, `${count}-entry table`);
  return count;
}

/**
 * Parses 'senc' (§7.2) or PIFF's sample encryption box. The IV size is not in the box: it
 * comes from tenc, a seig group, or (PIFF flag 0x1) the box's own override.
 */
export function parseSampleEncryption(
  box: Box,
  ivSizeOf: IvSizeOf,
  expectedCount?: number,
): SampleEncryptionBox {
  const r = boxReader(box);
  const { flags } = r.fullBoxHeader();
  let piffOverride: PiffOverride | undefined;
  if (box.type === 'uuid' && (flags & PIFF_SENC_OVERRIDE) !== 0) {
    const algorithm = r.u24();
    const ivSize = checkIvSize(r.u8(), 'piff senc');
    piffOverride = { algorithm, ivSize, kid: Uint8Array.from(r.bytes(16)) };
  }
  const withSubsamples = (flags & SENC_USE_SUBSAMPLES) !== 0;
  const count = checkedCount(r, withSubsamples ? 2 : 0);
  if (expectedCount !== undefined && count !== expectedCount) {
    throw kwError(
      'MEDIA_MALFORMED_BOX',
      `${box.type} has ${count} entries for ${expectedCount} samples`,
      { box: box.type, offset: box.offset },
    );
  }
  // Entries of constant-IV, whole-sample tracks take no bytes: nothing in the box bounds the count.
  if (count > MAX_SENC_ENTRIES)
    throw kwError('MEDIA_TOO_LARGE', `${box.type} declares ${count} entries`, {
      box: box.type,
      offset: box.offset,
    });
  const b = new SampleEncryptionTableBuilder(count);
  for (let i = 0; i < count; i++) b.read(r, piffOverride?.ivSize ?? ivSizeOf(i), withSubsamples);
  if (r.remaining !== 0) {
    throw kwError(
      'MEDIA_MALFORMED_BOX',
      `${box.type}: ${r.remaining} bytes left after ${count} entries (wrong IV size?)`,
      {
        box: box.type,
        offset: box.offset,
      },
    );
  }
  return { flags, table: b.build(), ...(piffOverride && { piffOverride }) };
}

/**
 * Guesses the per-sample IV size of a senc whose track defaults are unknown (inspect only):
 * the size among 16, 8, 0 that makes the entries fill the box exactly.
 */
export function guessSencIvSize(box: Box): number | undefined {
  for (const size of [16, 8, 0]) {
    try {
      parseSampleEncryption(box, () => size);
      return size;
    } catch {
      // Not this size: try the next one.
    }
  }
  return undefined;
}

/** One sample's entry as objects (for inspection and tests, not the decrypt path). */
export function sampleEncryptionInfo(
  table: SampleEncryptionTable,
  index: number,
): SampleEncryptionInfo {
  const ivSize = table.ivSizes[index] ?? 0;
  const iv = table.ivs.slice(index * 16, index * 16 + ivSize);
  const start = table.subsampleStart[index] ?? 0;
  const subsamples: Subsample[] = [];
  for (let k = 0; k < (table.subsampleCount[index] ?? 0); k++) {
    subsamples.push({
      clear: table.subsamples[2 * (start + k)]!,
      protected: table.subsamples[2 * (start + k) + 1]!,
    });
  }
  return { iv, subsamples };
}

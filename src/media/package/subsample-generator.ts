import { kwError } from '../../errors/index.js';
import type { Subsample } from '../cenc-types.js';
import { splitNalUnits } from '../codec/nal-units.js';
import type { SliceHeaderParser } from '../codec/slice-header-parser.js';

const BLOCK = 16;
/** BytesOfClearData is 16 bits (ISO/IEC 23001-7 §7.2). */
export const MAX_CLEAR_BYTES = 0xffff;

/**
 * Builds a sample's subsample list from (clear, protected) regions in order: clear-only
 * regions are merged into the clear bytes of the next protected region, clear runs above
 * 65535 bytes are split into (65535, 0) entries, and with `align` each protected size is cut
 * to whole 16-byte blocks with the remainder moved to the clear bytes in front.
 */
export class SubsampleBuilder {
  private readonly out: Subsample[] = [];
  private pendingClear = 0;

  constructor(private readonly align: boolean) {}

  /** Adds a region of `clear` bytes followed by `protectedBytes` bytes to encrypt. */
  add(clear: number, protectedBytes: number): void {
    let prot = protectedBytes;
    if (this.align) prot -= prot % BLOCK;
    // A protected part below one block is left clear: 'cbcs' would leave it clear anyway
    // (partial blocks are never encrypted, §10.4.2) and for the CTR schemes it is not worth
    // a subsample entry.
    if (prot < BLOCK) prot = 0;
    this.pendingClear += clear + (protectedBytes - prot);
    if (prot === 0) return;
    this.push(this.pendingClear, prot);
    this.pendingClear = 0;
  }

  private push(clear: number, prot: number): void {
    let c = clear;
    while (c > MAX_CLEAR_BYTES) {
      this.out.push({ clear: MAX_CLEAR_BYTES, protected: 0 });
      c -= MAX_CLEAR_BYTES;
    }
    this.out.push({ clear: c, protected: prot });
  }

  /** The subsamples, trailing clear bytes included as a last (clear, 0) entry. */
  finish(): Subsample[] {
    if (this.pendingClear > 0) this.push(this.pendingClear, 0);
    this.pendingClear = 0;
    return this.out;
  }
}

/**
 * The subsample map of one H.264/H.265 sample (ISO/IEC 23001-7 §10.2-10.4 with ISO/IEC
 * 14496-15): each NAL unit is one region; its length prefix, NAL unit header and slice header
 * stay clear; non-VCL NAL units (parameter sets, SEI, AUD, ...) stay clear entirely.
 * The parser sees every NAL unit in decode order so it can track in-band parameter sets.
 */
export function videoSubsamples(
  sample: Uint8Array,
  parser: SliceHeaderParser,
  align: boolean,
): Subsample[] {
  const b = new SubsampleBuilder(align);
  for (const nal of splitNalUnits(sample, parser.nalLengthSize)) {
    const unit = sample.subarray(nal.start, nal.end);
    const header = parser.clearHeaderBytes(unit);
    const prefix = nal.start - nal.offset;
    if (header === undefined) b.add(prefix + unit.length, 0);
    else b.add(prefix + header, unit.length - header);
  }
  const subs = b.finish();
  checkCoverage(subs, sample.length);
  return subs;
}

/** Internal invariant: the map covers the sample exactly (a bug here would corrupt output). */
function checkCoverage(subs: readonly Subsample[], size: number): void {
  const covered = subs.reduce((n, s) => n + s.clear + s.protected, 0);
  if (covered !== size) {
    throw kwError('MEDIA_SUBSAMPLE_OVERFLOW', `subsamples cover ${covered} of ${size} bytes`, {
      covered,
      size,
    });
  }
}

/** Bytes of one senc entry's subsample part: a 16-bit count and 6 bytes per subsample. */
export function subsampleInfoSize(subs: readonly Subsample[]): number {
  return 2 + 6 * subs.length;
}

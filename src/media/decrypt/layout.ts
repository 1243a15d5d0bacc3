import { kwError } from '../../errors/index.js';
import type { BoxHeader } from '../box.js';

/** What the decryptor does with a top-level box. */
export type LayoutAction = 'copy' | 'media' | 'movie' | 'fragment' | 'index' | 'drop';

/** One top-level input box and where it lands in the output. */
export interface LayoutEntry {
  readonly source: number;
  readonly header: BoxHeader;
  readonly action: LayoutAction;
  /** Output size: the input size for copy/media/index, the rewritten size for movie/fragment, 0 for drop. */
  readonly outSize: number;
  outOffset: number;
  /** Position in {@link OutputLayout.entries}. */
  readonly index: number;
}

/**
 * The input→output map of a decrypt job, known before anything is written: the clear moov
 * and moof sizes depend only on which boxes are removed. It maps sample offsets (for stco,
 * trun data_offset, tfhd base_data_offset) and box boundaries (for sidx).
 */
export class OutputLayout {
  readonly entries: readonly LayoutEntry[];
  readonly outputSize: number;
  private readonly bySource: LayoutEntry[][] = [];

  constructor(entries: LayoutEntry[]) {
    let at = 0;
    for (const e of entries) {
      e.outOffset = at;
      at += e.outSize;
      (this.bySource[e.source] ??= []).push(e);
    }
    this.entries = entries;
    this.outputSize = at;
  }

  /** The entry whose input box contains `pos` (binary search over the source's boxes). */
  entryAt(source: number, pos: number): LayoutEntry | undefined {
    const list = this.bySource[source] ?? [];
    let lo = 0;
    let hi = list.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const e = list[mid]!;
      if (pos < e.header.offset) hi = mid - 1;
      else if (pos >= e.header.offset + e.header.size) lo = mid + 1;
      else return e;
    }
    return undefined;
  }

  /**
   * The output offset of input position `pos`: linear inside boxes copied as they are, and
   * defined at the start of any box or at the end of the source. Undefined elsewhere.
   */
  map(source: number, pos: number): number | undefined {
    const e = this.entryAt(source, pos);
    if (!e) return this.sourceEnd(source, pos);
    if (pos === e.header.offset) return e.outOffset;
    if (e.action === 'copy' || e.action === 'media') return e.outOffset + (pos - e.header.offset);
    return undefined;
  }

  /** Like {@link map} but throws MEDIA_SAMPLE_OUT_OF_RANGE when `pos` cannot be mapped. */
  mapOrThrow(source: number, pos: number, what: string): number {
    const out = this.map(source, pos);
    if (out === undefined)
      throw kwError('MEDIA_SAMPLE_OUT_OF_RANGE', `${what} points at ${pos}, inside a header box`, {
        offset: pos,
      });
    return out;
  }

  private sourceEnd(source: number, pos: number): number | undefined {
    const list = this.bySource[source] ?? [];
    const last = list[list.length - 1];
    return last && pos === last.header.offset + last.header.size
      ? last.outOffset + last.outSize
      : undefined;
  }

  /** The media box (mdat) whose payload holds `[pos, pos + size)`, or undefined. */
  mediaHolding(source: number, pos: number, size: number): LayoutEntry | undefined {
    const e = this.entryAt(source, pos);
    if (!e || e.action !== 'media') return undefined;
    const start = e.header.offset + e.header.headerSize;
    return pos >= start && pos + size <= e.header.offset + e.header.size ? e : undefined;
  }
}

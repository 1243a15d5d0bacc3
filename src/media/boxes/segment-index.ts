import { kwError } from '../../errors/index.js';
import { boxReader, type Box } from '../box.js';

/** One reference of 'sidx' (ISO/IEC 14496-12 §8.16.3). */
export interface SegmentReference {
  /** 1: the reference is to another sidx; 0: to media (moof+mdat...). */
  readonly referenceType: number;
  readonly referencedSize: number;
  readonly subsegmentDuration: number;
  readonly startsWithSap: boolean;
  readonly sapType: number;
  readonly sapDeltaTime: number;
}

/** 'sidx'. */
export interface SegmentIndex {
  readonly version: number;
  readonly referenceId: number;
  readonly timescale: number;
  readonly earliestPresentationTime: number;
  /** Distance from the end of this sidx to the first referenced byte. */
  readonly firstOffset: number;
  readonly references: readonly SegmentReference[];
  /** Payload offset of first_offset (for patching). */
  readonly firstOffsetAt: number;
  /** Payload offset of the first reference (for patching). */
  readonly referencesAt: number;
}

/** Parses 'sidx'. */
export function parseSegmentIndex(box: Box): SegmentIndex {
  const r = boxReader(box);
  const { version } = r.fullBoxHeader();
  const referenceId = r.u32();
  const timescale = r.u32();
  const earliestPresentationTime = version === 0 ? r.u32() : r.u64();
  const firstOffsetAt = r.pos;
  const firstOffset = version === 0 ? r.u32() : r.u64();
  r.skip(2);
  const count = r.u16();
  const referencesAt = r.pos;
  r.need(count * 12, `${count} references`);
  const references: SegmentReference[] = [];
  for (let i = 0; i < count; i++) {
    const a = r.u32();
    const subsegmentDuration = r.u32();
    const c = r.u32();
    references.push({
      referenceType: a >>> 31,
      referencedSize: a & 0x7fffffff,
      subsegmentDuration,
      startsWithSap: c >>> 31 === 1,
      sapType: (c >>> 28) & 0x7,
      sapDeltaTime: c & 0x0fffffff,
    });
  }
  return {
    version,
    referenceId,
    timescale,
    earliestPresentationTime,
    firstOffset,
    references,
    firstOffsetAt,
    referencesAt,
  };
}

/** A copy of a sidx payload with new first_offset and referenced sizes (same box size). */
export function patchSegmentIndex(
  box: Box,
  sidx: SegmentIndex,
  firstOffset: number,
  sizes: readonly number[],
): Uint8Array {
  const payload = Uint8Array.from(box.payload);
  const view = new DataView(payload.buffer);
  if (sidx.version === 0) view.setUint32(sidx.firstOffsetAt, checkU32(firstOffset, 0xffffffff));
  else view.setBigUint64(sidx.firstOffsetAt, BigInt(firstOffset));
  sizes.forEach((size, i) => {
    const at = sidx.referencesAt + i * 12;
    const type = view.getUint32(at) & 0x80000000;
    view.setUint32(at, (type | checkU32(size, 0x7fffffff)) >>> 0);
  });
  return payload;
}

function checkU32(v: number, max: number): number {
  if (!Number.isInteger(v) || v < 0 || v > max)
    throw kwError('MEDIA_TOO_LARGE', `sidx value ${v} does not fit its field`, { box: 'sidx' });
  return v;
}

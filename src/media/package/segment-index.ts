import { ByteWriter } from '../bytes.js';

/** reference_count is 16 bits (ISO/IEC 14496-12 §8.16.3.2). */
export const MAX_SIDX_REFERENCES = 0xffff;

/** One fragment as the 'sidx' references it. */
export interface SubsegmentReference {
  /** Bytes of the fragment (moof + mdat). */
  readonly size: number;
  /** Duration in the reference track's timescale. */
  readonly duration: number;
  /** The fragment's first reference-track sample is a sync sample (SAP type 1). */
  readonly startsWithSap: boolean;
}

/** What the 'sidx' says about the whole file. */
export interface SegmentIndexSpec {
  readonly referenceId: number;
  readonly timescale: number;
  readonly earliestPresentationTime: number;
  readonly references: readonly SubsegmentReference[];
}

/** Bytes of a version 1 'sidx' with `count` references. */
export function segmentIndexSize(count: number): number {
  return 8 + 4 + 4 + 4 + 8 + 8 + 2 + 2 + 12 * count;
}

/**
 * A version 1 'sidx' (§8.16.3) indexing every fragment, first_offset 0 (the fragments follow
 * it). Besides helping players seek, it lets ffmpeg 5.1 see the fragment index as complete, so
 * it reads each moof when it reaches it instead of all of them up front (its CENC path then
 * takes the sample encryption data of the wrong fragment).
 */
export function writeSegmentIndex(spec: SegmentIndexSpec): Buffer {
  const w = new ByteWriter(segmentIndexSize(spec.references.length));
  w.fullBox('sidx', 1, 0, (b) => {
    b.u32(spec.referenceId).u32(spec.timescale).u64(spec.earliestPresentationTime).u64(0);
    b.u16(0).u16(spec.references.length);
    for (const r of spec.references) {
      b.u32(r.size & 0x7fffffff); // reference_type 0: media
      b.u32(r.duration);
      b.u32(r.startsWithSap ? 0x90000000 : 0); // starts_with_SAP, SAP_type 1, delta 0
    }
  });
  return w.toBuffer();
}

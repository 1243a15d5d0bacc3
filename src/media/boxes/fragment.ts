import { kwError } from '../../errors/index.js';
import { boxReader, type Box } from '../box.js';

/** tfhd flags (ISO/IEC 14496-12 §8.8.7.1). */
export const TFHD = {
  baseDataOffset: 0x000001,
  sampleDescriptionIndex: 0x000002,
  defaultSampleDuration: 0x000008,
  defaultSampleSize: 0x000010,
  defaultSampleFlags: 0x000020,
  durationIsEmpty: 0x010000,
  defaultBaseIsMoof: 0x020000,
} as const;

/** trun flags (§8.8.8.1). */
export const TRUN = {
  dataOffset: 0x000001,
  firstSampleFlags: 0x000004,
  sampleDuration: 0x000100,
  sampleSize: 0x000200,
  sampleFlags: 0x000400,
  sampleCompositionTimeOffset: 0x000800,
} as const;

/** sample_is_non_sync_sample in sample flags (§8.8.3.1). */
export const SAMPLE_IS_NON_SYNC = 0x00010000;

/**
 * Most samples a track fragment may hold (a trun without per-sample fields has nothing that
 * bounds its count). Real fragments hold a few hundred; six hours of AAC in one fragment is 1 M.
 */
export const MAX_RUN_SAMPLES = 1 << 20;

/** 'tfhd'. Optional fields are undefined when their flag is clear. */
export interface TrackFragmentHeader {
  readonly flags: number;
  readonly trackId: number;
  readonly baseDataOffset?: number;
  readonly sampleDescriptionIndex?: number;
  readonly defaultSampleDuration?: number;
  readonly defaultSampleSize?: number;
  readonly defaultSampleFlags?: number;
}

/** 'trun'. Per-sample arrays are present only when their flag is set. */
export interface TrackRun {
  readonly version: number;
  readonly flags: number;
  readonly sampleCount: number;
  readonly dataOffset?: number;
  readonly firstSampleFlags?: number;
  readonly durations?: Uint32Array;
  readonly sizes?: Uint32Array;
  readonly sampleFlags?: Uint32Array;
  /** Composition offsets: signed for version 1, unsigned (but stored here as numbers) for version 0. */
  readonly compositionOffsets?: Float64Array;
}

/** Parses 'mfhd': the fragment's sequence number. */
export function parseMovieFragmentHeader(box: Box): number {
  const r = boxReader(box);
  r.fullBoxHeader();
  return r.u32();
}

/** Parses 'tfhd'. */
export function parseTrackFragmentHeader(box: Box): TrackFragmentHeader {
  const r = boxReader(box);
  const { flags } = r.fullBoxHeader();
  const trackId = r.u32();
  const opt = (bit: number, read: () => number): number | undefined =>
    (flags & bit) !== 0 ? read() : undefined;
  const header: TrackFragmentHeader = {
    flags,
    trackId,
    baseDataOffset: opt(TFHD.baseDataOffset, () => r.u64()),
    sampleDescriptionIndex: opt(TFHD.sampleDescriptionIndex, () => r.u32()),
    defaultSampleDuration: opt(TFHD.defaultSampleDuration, () => r.u32()),
    defaultSampleSize: opt(TFHD.defaultSampleSize, () => r.u32()),
    defaultSampleFlags: opt(TFHD.defaultSampleFlags, () => r.u32()),
  };
  return header;
}

/** Parses 'tfdt' (§8.8.12): baseMediaDecodeTime. */
export function parseTrackFragmentDecodeTime(box: Box): number {
  const r = boxReader(box);
  const { version } = r.fullBoxHeader();
  return version === 1 ? r.u64() : r.u32();
}

function popcount(n: number): number {
  let c = 0;
  for (let v = n; v !== 0; v &= v - 1) c++;
  return c;
}

/** Parses 'trun', checking the sample count against the box size before allocating. */
export function parseTrackRun(box: Box): TrackRun {
  const r = boxReader(box);
  const { version, flags } = r.fullBoxHeader();
  const sampleCount = r.u32();
  const dataOffset = (flags & TRUN.dataOffset) !== 0 ? r.i32() : undefined;
  const firstSampleFlags = (flags & TRUN.firstSampleFlags) !== 0 ? r.u32() : undefined;
  const perSample = 4 * popcount(flags & 0xf00);
  if (perSample === 0 && sampleCount > MAX_RUN_SAMPLES) {
    throw kwError('MEDIA_TOO_LARGE', `trun declares ${sampleCount} samples`, {
      box: 'trun',
      offset: box.offset,
    });
  }
  r.need(sampleCount * perSample, `${sampleCount}-sample table`);
  const table = (bit: number): Uint32Array | undefined =>
    (flags & bit) !== 0 ? new Uint32Array(sampleCount) : undefined;
  const durations = table(TRUN.sampleDuration);
  const sizes = table(TRUN.sampleSize);
  const sampleFlags = table(TRUN.sampleFlags);
  const cto =
    (flags & TRUN.sampleCompositionTimeOffset) !== 0 ? new Float64Array(sampleCount) : undefined;
  for (let i = 0; i < sampleCount; i++) {
    if (durations) durations[i] = r.u32();
    if (sizes) sizes[i] = r.u32();
    if (sampleFlags) sampleFlags[i] = r.u32();
    if (cto) cto[i] = version === 0 ? r.u32() : r.i32();
  }
  return {
    version,
    flags,
    sampleCount,
    dataOffset,
    firstSampleFlags,
    durations,
    sizes,
    sampleFlags,
    compositionOffsets: cto,
  };
}

/** A copy of a trun payload with its data_offset replaced (the field follows sample_count). */
export function withRunDataOffset(box: Box, dataOffset: number): Uint8Array {
  const payload = Uint8Array.from(box.payload);
  new DataView(payload.buffer).setInt32(8, dataOffset);
  return payload;
}

/** A copy of a tfhd payload with its base_data_offset replaced (the field follows track_ID). */
export function withBaseDataOffset(box: Box, baseDataOffset: number): Uint8Array {
  const payload = Uint8Array.from(box.payload);
  new DataView(payload.buffer).setBigUint64(8, BigInt(baseDataOffset));
  return payload;
}

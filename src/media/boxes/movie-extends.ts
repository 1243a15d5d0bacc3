import { boxReader, type Box } from '../box.js';

/** 'trex' (ISO/IEC 14496-12 §8.8.3): per-track defaults for fragments. */
export interface TrackExtends {
  readonly trackId: number;
  readonly defaultSampleDescriptionIndex: number;
  readonly defaultSampleDuration: number;
  readonly defaultSampleSize: number;
  readonly defaultSampleFlags: number;
}

/** Parses 'trex'. */
export function parseTrackExtends(box: Box): TrackExtends {
  const r = boxReader(box);
  r.fullBoxHeader();
  return {
    trackId: r.u32(),
    defaultSampleDescriptionIndex: r.u32(),
    defaultSampleDuration: r.u32(),
    defaultSampleSize: r.u32(),
    defaultSampleFlags: r.u32(),
  };
}

/** Parses 'mehd' (§8.8.2): the whole movie's duration including fragments. */
export function parseMovieExtendsHeader(box: Box): number {
  const r = boxReader(box);
  const { version } = r.fullBoxHeader();
  return version === 1 ? r.u64() : r.u32();
}

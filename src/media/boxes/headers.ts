import { kwError } from '../../errors/index.js';
import { boxReader, type Box } from '../box.js';
import type { ByteReader } from '../bytes.js';

/** 'mvhd' (ISO/IEC 14496-12 §8.2.2), the fields keywarden uses. */
export interface MovieHeader {
  readonly version: number;
  readonly timescale: number;
  readonly duration: number;
  readonly nextTrackId: number;
}

/** 'tkhd' (§8.3.2). Width and height are 16.16 fixed point turned into numbers. */
export interface TrackHeader {
  readonly version: number;
  readonly flags: number;
  readonly trackId: number;
  readonly duration: number;
  readonly width: number;
  readonly height: number;
}

/** 'mdhd' (§8.4.2). */
export interface MediaHeader {
  readonly version: number;
  readonly timescale: number;
  readonly duration: number;
  /** ISO 639-2/T code, e.g. 'und'. */
  readonly language: string;
}

/** 'hdlr' (§8.4.3). */
export interface HandlerReference {
  /** 'vide', 'soun', 'text', 'subt', 'clcp', 'meta', ... */
  readonly handlerType: string;
  readonly name: string;
}

/** Reads creation/modification times, then returns the version's size of the next fields. */
function times(r: ByteReader, version: number): void {
  if (version > 1)
    throw kwError('MEDIA_UNSUPPORTED', `${r.context} version ${version}`, { box: r.context });
  r.skip(version === 1 ? 16 : 8);
}

function timeValue(r: ByteReader, version: number): number {
  return version === 1 ? r.u64() : r.u32();
}

/** Parses 'mvhd'. */
export function parseMovieHeader(box: Box): MovieHeader {
  const r = boxReader(box);
  const { version } = r.fullBoxHeader();
  times(r, version);
  const timescale = r.u32();
  const duration = timeValue(r, version);
  r.skip(4 + 2 + 10 + 36 + 24);
  return { version, timescale, duration, nextTrackId: r.u32() };
}

/** Parses 'tkhd'. */
export function parseTrackHeader(box: Box): TrackHeader {
  const r = boxReader(box);
  const { version, flags } = r.fullBoxHeader();
  times(r, version);
  const trackId = r.u32();
  r.skip(4);
  const duration = timeValue(r, version);
  r.skip(8 + 2 + 2 + 2 + 2 + 36);
  const width = r.u32() / 65536;
  const height = r.u32() / 65536;
  return { version, flags, trackId, duration, width, height };
}

/** Parses 'mdhd'. */
export function parseMediaHeader(box: Box): MediaHeader {
  const r = boxReader(box);
  const { version } = r.fullBoxHeader();
  times(r, version);
  const timescale = r.u32();
  const duration = timeValue(r, version);
  const packed = r.u16();
  const language = String.fromCharCode(
    ((packed >> 10) & 0x1f) + 0x60,
    ((packed >> 5) & 0x1f) + 0x60,
    (packed & 0x1f) + 0x60,
  );
  return { version, timescale, duration, language };
}

/** Parses 'hdlr'. The name is NUL-terminated UTF-8 (QuickTime writes a Pascal string: tolerated). */
export function parseHandler(box: Box): HandlerReference {
  const r = boxReader(box);
  r.fullBoxHeader();
  r.skip(4);
  const handlerType = r.fourcc();
  r.skip(12);
  const raw = r.rest();
  const nul = raw.indexOf(0);
  const name = Buffer.from(raw.subarray(0, nul < 0 ? raw.length : nul)).toString('utf8');
  return { handlerType, name: name.replace(/[^\x20-\x7e\u00a0-\uffff]/g, '') };
}

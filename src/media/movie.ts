import { kwError } from '../errors/index.js';
import {
  CONTAINER_BOXES,
  findChild,
  findChildren,
  parseBoxes,
  requireChild,
  type Box,
} from './box.js';
import {
  isProtectionSystemBox,
  parseFileType,
  parseHandler,
  parseMediaHeader,
  parseMovieExtendsHeader,
  parseMovieHeader,
  parseProtectionSchemeInfo,
  parseProtectionSystemHeader,
  parseSampleDescriptions,
  parseSampleGroupDescription,
  parseSeigEntry,
  parseTrackExtends,
  parseTrackHeader,
  type FileType,
  type FoundProtectionSystemHeader,
  type HandlerReference,
  type MediaHeader,
  type MovieHeader,
  type ProtectionSchemeInfo,
  type SampleDescriptions,
  type SampleEntry,
  type TrackExtends,
  type TrackHeader,
} from './boxes/index.js';
import type { SampleGroupEncryption } from './cenc-types.js';

/** One track of an init segment or a flat file. */
export interface Track {
  readonly id: number;
  readonly header: TrackHeader;
  readonly media: MediaHeader;
  readonly handler: HandlerReference;
  readonly descriptions: SampleDescriptions;
  /** Protection of each sample entry (index = sample_description_index - 1); undefined when clear. */
  readonly protection: readonly (ProtectionSchemeInfo | undefined)[];
  /** The track's fragment defaults, when the movie has 'mvex'. */
  readonly trex?: TrackExtends;
  /** 'seig' descriptions in stbl (key rotation for the whole track, or flat files). */
  readonly seigGroups: readonly SampleGroupEncryption[];
  /** The 'trak' box and its 'stbl' (for sample tables and flat-file encryption boxes). */
  readonly box: Box;
  readonly stbl: Box;
}

/** A parsed 'moov': an init segment or the header of a flat file. */
export interface Movie {
  readonly header: MovieHeader;
  readonly tracks: readonly Track[];
  /** Every pssh in moov, PIFF's uuid variant included. */
  readonly pssh: readonly FoundProtectionSystemHeader[];
  /** True when the movie has 'mvex' (its media comes in fragments). */
  readonly fragmented: boolean;
  /** 'mehd' fragment_duration, when present. */
  readonly fragmentDuration?: number;
  readonly box: Box;
}

/** A whole file parsed in memory (small files, tests, init segments). */
export interface ParsedFile {
  /** Top-level boxes (containers parsed, mdat payloads as views). */
  readonly boxes: readonly Box[];
  readonly fileType?: FileType;
  /** Undefined when the file has no moov (a media segment). */
  readonly movie?: Movie;
}

/**
 * The containers keywarden descends into when reading media: CONTAINER_BOXES without 'udta',
 * whose QuickTime-style atoms (and trailing zero terminators) need not parse as boxes.
 */
export const MEDIA_CONTAINERS: ReadonlySet<string> = new Set(
  [...CONTAINER_BOXES].filter((t) => t !== 'udta'),
);

/** Boxes that only ever appear at file level. */
const FILE_LEVEL_ONLY: ReadonlySet<string> = new Set([
  'ftyp',
  'styp',
  'moov',
  'moof',
  'mdat',
  'sidx',
  'mfra',
]);

/** Parses a 'moov' box (with its children already parsed by parseBoxes). */
export function parseMovie(moov: Box): Movie {
  const stray = moov.children?.find((c) => FILE_LEVEL_ONLY.has(c.type));
  if (stray) {
    // A moov whose size reaches over the file's other top-level boxes (size 0, or a lie).
    throw kwError('MEDIA_MALFORMED_BOX', `moov contains a '${stray.type}' box at ${stray.offset}`, {
      box: stray.type,
      offset: stray.offset,
    });
  }
  const mvex = findChild(moov, 'mvex');
  const trexes = mvex ? findChildren(mvex, 'trex').map(parseTrackExtends) : [];
  const mehd = mvex ? findChild(mvex, 'mehd') : undefined;
  const tracks = findChildren(moov, 'trak').map((trak) => parseTrack(trak, trexes));
  const ids = new Set(tracks.map((t) => t.id));
  if (ids.size !== tracks.length)
    throw kwError('MEDIA_MALFORMED_BOX', 'two tracks share a track_ID', { box: 'moov' });
  return {
    header: parseMovieHeader(requireChild(moov, 'mvhd', 'moov')),
    tracks,
    pssh: (moov.children ?? []).filter(isProtectionSystemBox).map(parseProtectionSystemHeader),
    fragmented: mvex !== undefined,
    ...(mehd && { fragmentDuration: parseMovieExtendsHeader(mehd) }),
    box: moov,
  };
}

/** Parses one 'trak'. */
export function parseTrack(trak: Box, trexes: readonly TrackExtends[] = []): Track {
  const header = parseTrackHeader(requireChild(trak, 'tkhd', 'trak'));
  const mdia = requireChild(trak, 'mdia', `track ${header.trackId}`);
  const handler = parseHandler(requireChild(mdia, 'hdlr', `track ${header.trackId} mdia`));
  const minf = requireChild(mdia, 'minf', `track ${header.trackId} mdia`);
  const stbl = requireChild(minf, 'stbl', `track ${header.trackId} minf`);
  const descriptions = parseSampleDescriptions(
    requireChild(stbl, 'stsd', `track ${header.trackId} stbl`),
    handler.handlerType,
  );
  const trex = trexes.find((t) => t.trackId === header.trackId);
  return {
    id: header.trackId,
    header,
    media: parseMediaHeader(requireChild(mdia, 'mdhd', `track ${header.trackId} mdia`)),
    handler,
    descriptions,
    protection: descriptions.entries.map(entryProtection),
    ...(trex && { trex }),
    seigGroups: seigGroups(stbl),
    box: trak,
    stbl,
  };
}

function entryProtection(entry: SampleEntry): ProtectionSchemeInfo | undefined {
  const sinf = entry.children.find((c) => c.type === 'sinf');
  return sinf ? parseProtectionSchemeInfo(sinf) : undefined;
}

/** The 'seig' group descriptions of a stbl or traf. */
export function seigGroups(parent: Box): SampleGroupEncryption[] {
  const sgpd = findChildren(parent, 'sgpd')
    .map(parseSampleGroupDescription)
    .find((g) => g.groupingType === 'seig');
  return sgpd ? sgpd.entries.map((e) => parseSeigEntry(e)) : [];
}

/** The sample entry type before encryption: frma's format for encv/enca, else the entry's own. */
export function originalFormat(track: Track, descriptionIndex = 1): string {
  const i = descriptionIndex - 1;
  return track.protection[i]?.originalFormat ?? track.descriptions.entries[i]?.format ?? '????';
}

/** True when any of the track's sample entries is protected. */
export function isProtectedTrack(track: Track): boolean {
  return track.protection.some((p) => p !== undefined);
}

/** Finds a track by id. */
export function findTrack(movie: Movie, trackId: number): Track | undefined {
  return movie.tracks.find((t) => t.id === trackId);
}

/** Parses a whole file held in memory. Throws MEDIA_NOT_MP4 when it does not start like ISO BMFF. */
export function parseFile(buf: Uint8Array): ParsedFile {
  const boxes = parseBoxes(buf, 0, buf.length, { containers: MEDIA_CONTAINERS });
  const first = boxes[0];
  if (!first || !TOP_LEVEL_TYPES.has(first.type)) {
    throw kwError(
      'MEDIA_NOT_MP4',
      `the file starts with '${first?.type ?? ''}', not an ISO BMFF box`,
    );
  }
  const ftyp = boxes.find((b) => b.type === 'ftyp' || b.type === 'styp');
  const moov = boxes.find((b) => b.type === 'moov');
  return {
    boxes,
    ...(ftyp && { fileType: parseFileType(ftyp) }),
    ...(moov && { movie: parseMovie(moov) }),
  };
}

/** Box types that may open an ISO BMFF file or segment. */
export const TOP_LEVEL_TYPES: ReadonlySet<string> = new Set([
  'ftyp',
  'styp',
  'moov',
  'moof',
  'mdat',
  'free',
  'skip',
  'wide',
  'sidx',
  'ssix',
  'emsg',
  'prft',
  'uuid',
  'pdin',
  'meta',
  'mfra',
]);

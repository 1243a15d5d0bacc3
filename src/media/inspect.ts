import { findChild, findChildren, type Box, type BoxHeader } from './box.js';
import {
  isProtectionSystemBox,
  parseProtectionSystemHeader,
  parseFileType,
  parseSampleToGroup,
  parseSampleSizes,
  parseCompactSampleSizes,
  type FileType,
  type FoundProtectionSystemHeader,
  type ProtectionSchemeInfo,
} from './boxes/index.js';
import { toHex, toUuid } from './bytes.js';
import { SYSTEM_IDS, type SampleGroupEncryption } from './cenc-types.js';
import { piffOverrideOf } from './decrypt/aux-data.js';
import { decodePsshData, type PsshData } from './pssh-data.js';
import { parseMovie, seigGroups, originalFormat, type Movie, type Track } from './movie.js';
import { parseMovieFragment, type MovieFragment } from './samples.js';
import { FileSource, type ByteSource } from './stream/byte-source.js';
import { readWholeBox, scanTopLevel } from './stream/top-level-boxes.js';
import { isKeywardenError } from '../errors/index.js';

/** How a track (or a seig group) is encrypted, for display. */
export interface EncryptionSummary {
  readonly isProtected: boolean;
  readonly kid: string;
  readonly ivSize: number;
  /** Hex, when the IV is constant. */
  readonly constantIv?: string;
  /** "crypt:skip" for pattern schemes with a pattern. */
  readonly pattern?: string;
}

/** One track of an inspected file. */
export interface TrackSummary {
  readonly id: number;
  readonly handler: string;
  readonly handlerName: string;
  /** The sample entry type as stored ('encv', 'avc1', ...). */
  readonly format: string;
  /** The type before encryption (frma), or `format`. */
  readonly codec: string;
  readonly timescale: number;
  /** In the track's timescale: mdhd, or the fragments' total when mdhd says 0. */
  readonly duration: number;
  readonly sampleCount: number;
  readonly language: string;
  readonly width?: number;
  readonly height?: number;
  readonly channels?: number;
  readonly sampleRate?: number;
  /** Undefined for a clear track. */
  readonly protection?: {
    readonly scheme: string;
    readonly schemeVersion?: string;
    readonly piffAlgorithm?: number;
    readonly defaults?: EncryptionSummary;
    /** 'seig' groups in the track's stbl (key rotation across the whole track). */
    readonly groups: readonly EncryptionSummary[];
  };
}

/** One pssh. */
export interface PsshSummary {
  readonly systemId: string;
  readonly system: string;
  readonly version: number;
  readonly piff: boolean;
  readonly kids: readonly string[];
  readonly dataSize: number;
  /** keywarden's own pssh data, decoded. */
  readonly keywarden?: Omit<PsshData, 'keyIds' | 'embeddedLicense'> & {
    readonly keyIds: readonly string[];
    /** Size of the embedded leaf license (live streams), bytes; 0 when none. */
    readonly embeddedLicenseBytes: number;
  };
  /** Why the data could not be decoded. */
  readonly dataError?: string;
  /** Where it was: 'moov' or 'moof #n'. */
  readonly location: string;
}

/** One fragment. */
export interface FragmentSummary {
  readonly sequenceNumber: number;
  readonly offset: number;
  readonly size: number;
  readonly tracks: readonly {
    readonly id: number;
    readonly sampleCount: number;
    readonly baseMediaDecodeTime?: number;
    readonly duration: number;
    /** True when the traf carries seig groups or a seig sbgp (key rotation). */
    readonly keyRotation: boolean;
    /** KIDs of the fragment's own seig groups or PIFF override. */
    readonly kids: readonly string[];
  }[];
}

/** Everything `keywarden inspect` shows. */
export interface InspectReport {
  readonly file: string;
  readonly size: number;
  readonly brands?: FileType;
  readonly fragmented: boolean;
  /** In seconds. */
  readonly duration: number;
  readonly encrypted: boolean;
  readonly tracks: readonly TrackSummary[];
  readonly pssh: readonly PsshSummary[];
  readonly fragments: { readonly count: number; readonly list: readonly FragmentSummary[] };
  readonly segmentIndexes: number;
  readonly topLevel: readonly {
    readonly type: string;
    readonly offset: number;
    readonly size: number;
  }[];
}

const SYSTEM_NAMES: ReadonlyMap<string, string> = new Map(
  Object.entries(SYSTEM_IDS).map(([name, id]) => [id, name]),
);

function summarizeEncryption(e: SampleGroupEncryption, scheme: string): EncryptionSummary {
  const pattern =
    (scheme === 'cbcs' || scheme === 'cens') && (e.cryptByteBlock > 0 || e.skipByteBlock > 0);
  return {
    isProtected: e.isProtected !== 0,
    kid: toUuid(e.kid),
    ivSize: e.perSampleIvSize,
    ...(e.constantIv && { constantIv: toHex(e.constantIv) }),
    ...(pattern && { pattern: `${e.cryptByteBlock}:${e.skipByteBlock}` }),
  };
}

function schemeName(p: ProtectionSchemeInfo): string {
  return (p.schemeType ?? (p.piffAlgorithm !== undefined ? 'piff' : 'none')).replace(
    /[^\x20-\x7e]/g,
    '?',
  );
}

function summarizeProtection(track: Track): TrackSummary['protection'] {
  const p = track.protection.find((x) => x !== undefined);
  if (!p) return undefined;
  const scheme = schemeName(p);
  return {
    scheme,
    ...(p.schemeVersion !== undefined && {
      schemeVersion: `${p.schemeVersion >>> 16}.${p.schemeVersion & 0xffff}`,
    }),
    ...(p.piffAlgorithm !== undefined && { piffAlgorithm: p.piffAlgorithm }),
    ...(p.trackEncryption && { defaults: summarizeEncryption(p.trackEncryption, scheme) }),
    groups: track.seigGroups.map((g) => summarizeEncryption(g, scheme)),
  };
}

function flatSampleCount(track: Track): number {
  const stsz = findChild(track.stbl, 'stsz');
  if (stsz) return parseSampleSizes(stsz).count;
  const stz2 = findChild(track.stbl, 'stz2');
  return stz2 ? parseCompactSampleSizes(stz2).count : 0;
}

/** Summarizes one pssh, decoding the data of the systems we know. */
export function summarizePssh(p: FoundProtectionSystemHeader, location: string): PsshSummary {
  const systemId = toUuid(p.systemId);
  const base = {
    systemId,
    system: SYSTEM_NAMES.get(systemId) ?? 'unknown',
    version: p.version,
    piff: p.piff,
    kids: p.kids.map(toUuid),
    dataSize: p.data.length,
    location,
  };
  if (systemId !== SYSTEM_IDS.keywarden) return base;
  try {
    const { embeddedLicense, ...d } = decodePsshData(p.data);
    return {
      ...base,
      keywarden: {
        ...d,
        keyIds: d.keyIds.map(toUuid),
        embeddedLicenseBytes: embeddedLicense.length,
      },
    };
  } catch (err) {
    if (!isKeywardenError(err)) throw err;
    return { ...base, dataError: err.message };
  }
}

function summarizeFragment(f: MovieFragment, offset: number, size: number): FragmentSummary {
  return {
    sequenceNumber: f.sequenceNumber,
    offset,
    size,
    tracks: f.trafs.map((tf) => {
      const groups = seigGroups(tf.box);
      const rotation =
        groups.length > 0 ||
        findChildren(tf.box, 'sbgp').some((b) => parseSampleToGroup(b).groupingType === 'seig');
      const piff = piffOverrideOf(tf.box);
      const kids = [
        ...groups.filter((g) => g.isProtected !== 0).map((g) => toUuid(g.kid)),
        ...(piff ? [toUuid(piff.kid)] : []),
      ];
      const first = tf.samples[0];
      return {
        id: tf.trackId,
        sampleCount: tf.samples.length,
        ...(tf.baseMediaDecodeTime !== undefined && {
          baseMediaDecodeTime: tf.baseMediaDecodeTime,
        }),
        duration: first ? tf.endTime - first.dts : 0,
        keyRotation: rotation,
        kids: [...new Set(kids)],
      };
    }),
  };
}

function summarizeTrack(
  track: Track,
  fragmentSamples: number,
  fragmentDuration: number,
): TrackSummary {
  const entry = track.descriptions.entries[0];
  return {
    id: track.id,
    handler: track.handler.handlerType,
    handlerName: track.handler.name,
    format: entry?.format ?? '????',
    codec: originalFormat(track),
    timescale: track.media.timescale,
    duration:
      track.media.duration > 0 && track.media.duration !== 0xffffffff
        ? track.media.duration
        : fragmentDuration,
    sampleCount: flatSampleCount(track) + fragmentSamples,
    language: track.media.language,
    ...(entry?.layout === 'visual' && { width: entry.width, height: entry.height }),
    ...(entry?.layout === 'audio' && {
      channels: entry.channelCount,
      sampleRate: entry.sampleRate,
    }),
    ...(track.protection.some((p) => p) && { protection: summarizeProtection(track) }),
  };
}

/** Per-track sample count and duration summed over fragments. */
function fragmentTotals(
  fragments: readonly FragmentSummary[],
): Map<number, { samples: number; duration: number }> {
  const totals = new Map<number, { samples: number; duration: number }>();
  for (const t of fragments.flatMap((f) => f.tracks)) {
    const acc = totals.get(t.id) ?? { samples: 0, duration: 0 };
    totals.set(t.id, { samples: acc.samples + t.sampleCount, duration: acc.duration + t.duration });
  }
  return totals;
}

/** Reads every moof (never an mdat) and summarizes it, with the pssh boxes it carries. */
async function readFragments(
  src: ByteSource,
  headers: readonly BoxHeader[],
  movie: Movie | undefined,
): Promise<{ fragments: FragmentSummary[]; pssh: PsshSummary[] }> {
  const fragments: FragmentSummary[] = [];
  const pssh: PsshSummary[] = [];
  const times = new Map<number, number>();
  for (const h of headers.filter((x) => x.type === 'moof')) {
    const moof: Box = await readWholeBox(src, h);
    const f = parseMovieFragment(moof, movie, { decodeTimes: times, dataLimit: src.size });
    pssh.push(...movieFragmentPssh(moof, f.sequenceNumber));
    fragments.push(summarizeFragment(f, h.offset, h.size));
    for (const tf of f.trafs) times.set(tf.trackId, tf.endTime);
  }
  return { fragments, pssh };
}

/** Reads the structure of an MP4 from a source: headers only, no media data. */
export async function inspectSource(src: ByteSource): Promise<InspectReport> {
  const headers = await scanTopLevel(src);
  const ftyp = headers.find((h) => h.type === 'ftyp');
  const brands = ftyp ? parseFileType(await readWholeBox(src, ftyp)) : undefined;
  const moov = headers.find((h) => h.type === 'moov');
  const movie = moov ? parseMovie(await readWholeBox(src, moov)) : undefined;
  const { fragments, pssh } = await readFragments(src, headers, movie);
  const totals = fragmentTotals(fragments);
  const tracks = (movie?.tracks ?? []).map((t) =>
    summarizeTrack(t, totals.get(t.id)?.samples ?? 0, totals.get(t.id)?.duration ?? 0),
  );
  return {
    file: src.name,
    size: src.size,
    ...(brands && { brands }),
    fragmented: movie?.fragmented ?? fragments.length > 0,
    duration: movieDuration(movie, tracks),
    encrypted: tracks.some((t) => t.protection),
    tracks,
    pssh: [...(movie?.pssh ?? []).map((p) => summarizePssh(p, 'moov')), ...pssh],
    fragments: { count: fragments.length, list: fragments },
    segmentIndexes: headers.filter((h) => h.type === 'sidx').length,
    topLevel: headers.map((h) => ({ type: h.type, offset: h.offset, size: h.size })),
  };
}

function movieFragmentPssh(moof: Box, sequenceNumber: number): PsshSummary[] {
  return (moof.children ?? [])
    .filter(isProtectionSystemBox)
    .map((b) => summarizePssh(parseProtectionSystemHeader(b), `moof #${sequenceNumber}`));
}

function movieDuration(movie: Movie | undefined, tracks: readonly TrackSummary[]): number {
  if (
    movie &&
    movie.header.duration > 0 &&
    movie.header.timescale > 0 &&
    movie.header.duration !== 0xffffffff
  ) {
    return movie.header.duration / movie.header.timescale;
  }
  return Math.max(0, ...tracks.map((t) => (t.timescale > 0 ? t.duration / t.timescale : 0)));
}

/** Inspects a file on disk. */
export async function inspectFile(path: string): Promise<InspectReport> {
  const src = await FileSource.open(path);
  try {
    return await inspectSource(src);
  } finally {
    await src.close();
  }
}
